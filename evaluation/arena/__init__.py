"""GPTEval3D-style arena for image-to-3D (paper §7.1; protocol in Wu et al. 2024): a judge compares pairs of
assets from turntable renders and the conditioning image, and the votes become Elo ratings per criterion.

- `views`: turntable renders and the comparison tiling (RGB grid above normal grid, assets side by side);
- `judges`: the judge interface, OpenAI-compatible and Anthropic HTTP clients, the offline proxy judge;
- `parsing`: the reference's reply rule (last line, one vote in {1, 2, 3} per criterion);
- `elo`: maximum-likelihood (Bradley–Terry) Elo, tournament and new-method modes, bootstrap intervals;
- `run`: scheduling, running a tournament and writing its outputs.

The question's text lives in `evaluation/prompts/` (see its README for how untextured meshes are judged).
"""

from .elo import (
    VOTE_COLUMNS,
    elo_from_csv,
    fit_elo,
    frozen_from_ratings,
    markdown_table,
    rating_cells,
    ratings_table,
    read_votes,
)
from .judges import (
    AnthropicJudge,
    ComparisonRequest,
    Judge,
    JudgeError,
    JudgeImage,
    OfflineJudge,
    OpenAIJudge,
    ResponseCache,
    make_judge,
    measure_asset,
)
from .parsing import ParsedReply, parse_reply
from .run import (
    DEFAULT_CRITERIA,
    ArenaConfig,
    ArenaResult,
    Asset,
    Criterion,
    build_question,
    load_criteria,
    plot_radar,
    run_arena,
    schedule_comparisons,
)
from .views import ViewConfig, load_condition, render_turntable, tile_asset, tile_comparison, view_indices

__all__ = [
    "DEFAULT_CRITERIA",
    "VOTE_COLUMNS",
    "AnthropicJudge",
    "ArenaConfig",
    "ArenaResult",
    "Asset",
    "ComparisonRequest",
    "Criterion",
    "Judge",
    "JudgeError",
    "JudgeImage",
    "OfflineJudge",
    "OpenAIJudge",
    "ParsedReply",
    "ResponseCache",
    "ViewConfig",
    "build_question",
    "elo_from_csv",
    "fit_elo",
    "frozen_from_ratings",
    "load_condition",
    "load_criteria",
    "make_judge",
    "markdown_table",
    "measure_asset",
    "parse_reply",
    "plot_radar",
    "rating_cells",
    "ratings_table",
    "read_votes",
    "render_turntable",
    "run_arena",
    "schedule_comparisons",
    "tile_asset",
    "tile_comparison",
    "view_indices",
]
