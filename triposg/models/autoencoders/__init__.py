"""Import path named by the released checkpoint's `model_index.json` (kept as an alias)."""
