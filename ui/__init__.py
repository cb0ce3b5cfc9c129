"""The Gradio app's pieces: `widgets` (what every tab shares), `generate` (the demo's Generate tab, needing
only `triposg`) and `lab` (the evaluation lab's tabs, over `evaluation`). `app.py` puts them together."""
