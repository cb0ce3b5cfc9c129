"""Running an arena: schedule pairs, render and tile, ask a judge, read votes, fit Elo, write outputs.

`run_arena` is the function the command line (`python -m evaluation arena`) and the app call:

1. Load the criteria and build the question from the text files in `evaluation/prompts/`.
2. Schedule comparisons: every pair of methods on every asset (conditioning image) both have
   (tournament mode), or each new method against the frozen ones round-robin over shuffled opponents,
   each pair on an asset it has not used yet (new-method mode, as in the reference). Left/right is
   drawn per comparison.
3. Render each asset's turntable views once and save its tile (RGB grid above normal grid); for the
   offline proxy judge also measure it (`judges.measure_asset`).
4. Ask the judge about every comparison (`judge.max_concurrency` at a time): the conditioning image and
   the two tiles side by side. Parse each completion (malformed ones are discarded and counted) and undo
   the left/right swap.
5. Fit Elo per criterion (`elo.fit_elo`) with bootstrap intervals and write the outputs.

Outputs in `out_dir`:
    question.txt          the instruction sent with every comparison
    renders/<method>/<asset>.png   each asset's tile
    comparisons/<id>.png  each comparison image as the judge saw it (left | right)
    comparisons.jsonl     one record per comparison: pair, shown order, views, question, replies, parsed
                          votes as shown and after undoing the swap, malformed count, judge error
    votes.csv             one row per valid vote per criterion (columns in `evaluation.arena.elo`)
    ratings.csv           long table: criterion, method, rating, interval, wins/losses/draws, fixed
    results.csv / results.md   methods × criteria ratings (Markdown with intervals and run counts)
    radar.png             one polygon per method over the criteria
    summary.json          judge, proxy label, configuration and counts
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import math
import os
import re
import string
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import trimesh
from PIL import Image

from triposg.io import write_bytes_atomic

from .elo import VOTE_COLUMNS, fit_elo, frozen_from_ratings, markdown_table, ratings_table
from .judges import ComparisonRequest, Judge, JudgeError, JudgeImage, measure_asset
from .parsing import parse_reply, unswap
from .views import (
    Condition,
    MeshLike,
    ViewConfig,
    load_condition,
    load_mesh,
    render_turntable,
    tile_asset,
    tile_comparison,
    view_indices,
)

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"
INSTRUCTION_FILE = "arena_instruction.txt"
CRITERIA_DIR = "criteria"
# The image-to-3D criteria: the reference's 0, 1, 4, 2 and 5 (texture details left out: the
# pipeline makes untextured meshes; it ships as "texture_details" for textured comparisons).
DEFAULT_CRITERIA = ("alignment", "plausibility", "geometry_details", "texture_geometry_coherency", "overall")
REFERENCE_EXAMPLE_VOTES = (1, 2, 2, 3, 2, 1)  # the reference instruction's example final line
CONDITION_CAPTION = "Input image:"
COMPARISON_CAPTION = "Comparison image (left asset | right asset; RGB renders on top, normal maps below):"


# ----------------------------------------------------------------------------------------------
# Criteria and the question
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Criterion:
    """A judging criterion: `key` (votes and tables), `title` and `description` (the question)."""

    key: str
    title: str
    description: str


def load_criteria(
    criteria: Sequence[str | Criterion] = DEFAULT_CRITERIA, prompts_dir: str | os.PathLike = PROMPTS_DIR
) -> list[Criterion]:
    """Criteria by key from `<prompts_dir>/criteria/<key>.txt` (first line the title, the rest the
    description); `Criterion` objects are taken as they are."""
    loaded = []
    for criterion in criteria:
        if isinstance(criterion, Criterion):
            loaded.append(criterion)
            continue
        path = Path(prompts_dir) / CRITERIA_DIR / f"{criterion}.txt"
        if not path.is_file():
            available = sorted(p.stem for p in (Path(prompts_dir) / CRITERIA_DIR).glob("*.txt"))
            raise ValueError(f"unknown criterion {criterion!r}: no {path}; available: {available}")
        title, _, description = path.read_text(encoding="utf-8").strip().partition("\n")
        loaded.append(Criterion(criterion, title.strip(), description.strip()))
    keys = [criterion.key for criterion in loaded]
    if not keys or len(set(keys)) != len(keys):
        raise ValueError(f"criteria must be a non-empty list without repeats, got {keys}")
    return loaded


def build_question(
    criteria: Sequence[Criterion], views_per_comparison: int, prompts_dir: str | os.PathLike = PROMPTS_DIR
) -> str:
    """The instruction text: `arena_instruction.txt` with the view layout, criteria and answer format filled in."""
    side = math.isqrt(views_per_comparison)
    if views_per_comparison == 1:
        views_description = "the RGB render of one view (the front) is on top and its normal map is below it."
    else:
        views_description = (
            f"the top {side}×{side} grid holds RGB renders of {views_per_comparison} views evenly spaced around "
            f"the object and the bottom {side}×{side} grid holds the normal maps of the same views in the same "
            "positions. Views go row by row around the object, starting with the front."
        )
    example = itertools.islice(itertools.cycle(REFERENCE_EXAMPLE_VOTES), len(criteria))
    template = string.Template((Path(prompts_dir) / INSTRUCTION_FILE).read_text(encoding="utf-8"))
    return template.substitute(
        views_description=views_description,
        criteria="\n".join(f"{i}. {c.title}: {c.description}" for i, c in enumerate(criteria, start=1)),
        num_criteria=len(criteria),
        example=" ".join(map(str, example)),
    ).strip()


# ----------------------------------------------------------------------------------------------
# Assets and the schedule
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Asset:
    """One generated asset: its `mesh`, the conditioning `image` it was generated from, an optional
    ground-truth mesh, and `asset_id`, which pairs assets of different methods made from the same image
    (default: the image file's stem, or the asset's position in the list for in-memory images)."""

    mesh: MeshLike
    image: str | os.PathLike | Image.Image | np.ndarray
    gt_mesh: MeshLike | None = None
    asset_id: str | None = None


@dataclass(frozen=True)
class ArenaConfig:
    """How an arena runs; defaults follow the reference where it speaks."""

    views: ViewConfig = field(default_factory=ViewConfig)
    views_per_comparison: int = 4  # n ∈ {1, 4, 9} views per asset in a comparison
    num_completions: int = 3  # votes asked per comparison, as in the reference
    max_comparisons_per_pair: int | None = None  # assets per pair of methods; None = every shared asset
    mode: str = "tournament"  # or "new_method": methods in `frozen` keep their ratings
    anchor: str | None = None  # tournament anchor fixed at 1000; None = alphabetically first method
    n_bootstrap: int = 200  # bootstrap replicates over comparisons for the intervals; 0 = none
    confidence: float = 0.95  # coverage of the bootstrap intervals
    seed: int = 0  # schedule, left/right draws and bootstrap
    prompts_dir: str | os.PathLike = PROMPTS_DIR


@dataclass(frozen=True)
class ScheduledComparison:
    """One comparison: methods `a` and `b` on `asset_id`; `swapped` shows `a` on the right."""

    comparison_id: int
    asset_id: str
    method_a: str
    method_b: str
    swapped: bool


def schedule_comparisons(
    asset_ids: Mapping[str, Iterable[str]],
    rng: np.random.Generator,
    mode: str = "tournament",
    frozen_methods: Iterable[str] = (),
    max_comparisons_per_pair: int | None = None,
) -> list[ScheduledComparison]:
    """Pairs and assets to compare, with a random left/right order for each.

    `asset_ids`: method -> the asset ids it has. Tournament: every pair of methods on its shared assets
    (shuffled, at most `max_comparisons_per_pair`). New-method mode: each method not in `frozen_methods`
    meets the frozen ones round-robin over a shuffled opponent list, each time on a shared asset that pair
    has not used yet, until every pair has used `max_comparisons_per_pair` assets or run out of them.
    """
    ids = {method: set(values) for method, values in asset_ids.items()}

    def shared_assets(a: str, b: str) -> list[str]:
        """The pair's shared asset ids in random order, at most `max_comparisons_per_pair` of them."""
        shared = sorted(ids[a] & ids[b])
        return [shared[i] for i in rng.permutation(len(shared))][:max_comparisons_per_pair]

    pairs: list[tuple[str, str, str]] = []
    if mode == "tournament":
        for a, b in itertools.combinations(sorted(ids), 2):
            pairs += [(a, b, asset_id) for asset_id in shared_assets(a, b)]
    elif mode == "new_method":
        frozen = sorted(set(frozen_methods) & set(ids))
        new_methods = sorted(set(ids) - set(frozen))
        if not frozen or not new_methods:
            raise ValueError("new_method mode needs at least one frozen method and one new method with assets")
        for new in new_methods:
            opponents = [frozen[i] for i in rng.permutation(len(frozen))]
            unused = {opponent: shared_assets(new, opponent) for opponent in opponents}
            while any(unused.values()):
                for opponent in opponents:  # one round of the round-robin
                    if unused[opponent]:
                        pairs.append((new, opponent, unused[opponent].pop(0)))
    else:
        raise ValueError(f"mode must be 'tournament' or 'new_method', got {mode!r}")
    swaps = rng.random(len(pairs)) < 0.5
    return [
        ScheduledComparison(i, asset_id, a, b, bool(swap))
        for i, ((a, b, asset_id), swap) in enumerate(zip(pairs, swaps))
    ]


# ----------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------


@dataclass
class ArenaResult:
    """What `run_arena` produced (the same data as the files in `out_dir`)."""

    ratings: pd.DataFrame  # long: criterion, method, rating, ci_low, ci_high, wins, losses, draws, num_votes, fixed
    table: pd.DataFrame  # methods × criteria ratings, best overall first
    votes: pd.DataFrame  # one row per valid vote per criterion (`elo.VOTE_COLUMNS`)
    records: list[dict]  # one per comparison, as in comparisons.jsonl
    counts: dict[str, int]  # comparisons, replies, valid_replies, malformed_replies, failed_requests
    judge: dict[str, object]  # judge.describe(), including `is_proxy`
    out_dir: Path
    files: dict[str, Path]


def run_arena(
    methods: Mapping[str, Sequence[Asset | tuple]],
    judge: Judge,
    out_dir: str | os.PathLike,
    criteria: Sequence[str | Criterion] = DEFAULT_CRITERIA,
    config: ArenaConfig | None = None,
    frozen: Mapping | pd.DataFrame | None = None,
    progress: bool = False,
) -> ArenaResult:
    """Compare methods' assets pairwise with `judge` and rate them per criterion.

    Args:
        methods: method name -> its assets, each an `Asset` or a tuple (mesh, image[, gt_mesh[, asset_id]]);
            meshes are paths or Trimesh objects, images paths, PIL images or arrays.
        judge: an `OpenAIJudge`, `AnthropicJudge`, `OfflineJudge` (a labelled proxy) or any `Judge`.
        out_dir: where the outputs go (module docstring); created if needed.
        criteria: criterion keys (files in `evaluation/prompts/criteria/`) or `Criterion` objects.
        config: views, votes, schedule and rating settings (`ArenaConfig`).
        frozen: new-method mode: known ratings, as {method: rating}, {criterion: {method: rating}} or a
            ratings table from an earlier run (ratings.csv).
        progress: show progress bars.

    Raises:
        RuntimeError: no valid vote at all (every reply malformed or every request failed); the outputs
            written so far (comparisons.jsonl) say why.
    """
    config = config or ArenaConfig()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(config.seed)
    if isinstance(frozen, pd.DataFrame):
        frozen = frozen_from_ratings(frozen)
    if config.mode == "new_method" and not frozen:
        raise ValueError("new_method mode needs `frozen` ratings of the existing methods")
    if config.mode != "new_method" and frozen:
        raise ValueError("`frozen` ratings are for mode='new_method'; a tournament rates every method afresh")

    # 1. Criteria and the question.
    criteria = load_criteria(criteria, config.prompts_dir)
    criterion_keys = tuple(criterion.key for criterion in criteria)
    question = build_question(criteria, config.views_per_comparison, config.prompts_dir)
    indices = view_indices(config.views.num_views, config.views_per_comparison)
    write_bytes_atomic(out_dir / "question.txt", question.encode("utf-8"))

    # 2. Schedule.
    assets = {method: _index_assets(method, items) for method, items in methods.items()}
    frozen_methods = _frozen_method_names(frozen) if config.mode == "new_method" else set()
    schedule = schedule_comparisons(
        {method: list(items) for method, items in assets.items()},
        rng,
        config.mode,
        frozen_methods,
        config.max_comparisons_per_pair,
    )
    if not schedule:
        raise ValueError("nothing to compare: no two methods share an asset id (image file stem or Asset.asset_id)")

    # 3. Render, tile and (for a proxy judge) measure every asset that takes part.
    needed = sorted({(c.method_a, c.asset_id) for c in schedule} | {(c.method_b, c.asset_id) for c in schedule})
    conditions = _ConditionCache()
    tiles: dict[tuple[str, str], Path] = {}
    measurements: dict[tuple[str, str], dict[str, float]] = {}
    ground_truths: dict[object, tuple[trimesh.Trimesh, dict]] = {}  # one load and render per ground truth
    for method, asset_id in _progress(needed, progress, "rendering assets"):
        asset = assets[method][asset_id]
        mesh = load_mesh(asset.mesh)
        views = render_turntable(mesh, config.views, indices)
        tile_path = out_dir / "renders" / _file_stem(method) / f"{_file_stem(asset_id)}.png"
        write_bytes_atomic(tile_path, _png_bytes(tile_asset(views, indices)))
        tiles[method, asset_id] = tile_path
        condition = conditions.get(asset.image)  # segmented here, once, so a bad image fails before any request
        if judge.needs_measurements:
            gt_mesh, gt_views = None, None
            if asset.gt_mesh is not None:
                key = _identity(asset.gt_mesh)
                if key not in ground_truths:
                    loaded = load_mesh(asset.gt_mesh)
                    ground_truths[key] = (loaded, render_turntable(loaded, config.views, indices))
                gt_mesh, gt_views = ground_truths[key]
            measurements[method, asset_id] = measure_asset(views, mesh, condition.mask, gt_views, gt_mesh)

    # 4. Ask the judge.
    def ask(comparison: ScheduledComparison) -> dict:
        return _run_comparison(
            comparison,
            judge,
            question,
            criterion_keys,
            config.num_completions,
            indices,
            tiles,
            conditions.png(assets[comparison.method_a][comparison.asset_id].image),
            measurements,
            out_dir,
        )

    records = []
    with open(out_dir / "comparisons.jsonl", "w", encoding="utf-8") as jsonl:
        for record in _progress(
            _map_concurrently(ask, schedule, judge.max_concurrency), progress, "comparisons", len(schedule)
        ):
            jsonl.write(json.dumps(record, ensure_ascii=False) + "\n")
            jsonl.flush()
            records.append(record)
    records.sort(key=lambda record: record["comparison_id"])
    votes = _votes_table(records, criterion_keys)
    votes.to_csv(out_dir / "votes.csv", index=False)
    counts = {
        "comparisons": len(records),
        "replies": sum(len(r["replies"]) for r in records),
        "valid_replies": sum(sum(p["votes"] is not None for p in r["parsed"]) for r in records),
        "malformed_replies": sum(r["num_malformed"] for r in records),
        "failed_requests": sum(r["error"] is not None for r in records),
    }
    if votes.empty:
        raise RuntimeError(
            f"the judge gave no valid vote ({counts}); see {out_dir / 'comparisons.jsonl'} for its replies and errors"
        )

    # 5. Ratings and outputs.
    ratings = fit_elo(
        votes,
        mode=config.mode,
        anchor=config.anchor,
        frozen=frozen,
        n_bootstrap=config.n_bootstrap,
        confidence=config.confidence,
        seed=config.seed,
    )
    table = ratings_table(ratings, criterion_keys)
    titles = {criterion.key: criterion.title for criterion in criteria}
    description = judge.describe()
    label = _judge_label(description)
    ratings.to_csv(out_dir / "ratings.csv", index=False)
    table.to_csv(out_dir / "results.csv", float_format="%.1f")
    write_bytes_atomic(
        out_dir / "results.md",
        _results_markdown(ratings, criterion_keys, titles, label, counts, config).encode("utf-8"),
    )
    plot_radar(table, out_dir / "radar.png", title=f"Elo ratings — {label}", titles=titles)
    summary = {
        "judge": description,
        "criteria": list(criterion_keys),
        "counts": counts,
        "config": _config_record(config),
    }
    write_bytes_atomic(out_dir / "summary.json", json.dumps(summary, indent=2, default=str).encode("utf-8"))
    files = {
        name: out_dir / name
        for name in (
            "question.txt",
            "comparisons.jsonl",
            "votes.csv",
            "ratings.csv",
            "results.csv",
            "results.md",
            "radar.png",
            "summary.json",
        )
    }
    return ArenaResult(ratings, table, votes, records, counts, description, out_dir, files)


def _run_comparison(
    comparison: ScheduledComparison,
    judge: Judge,
    question: str,
    criteria: tuple[str, ...],
    num_completions: int,
    indices: list[int],
    tiles: Mapping[tuple[str, str], Path],
    condition_png: bytes,
    measurements: Mapping[tuple[str, str], dict[str, float]],
    out_dir: Path,
) -> dict:
    """Build one comparison's image and request, ask the judge, parse the replies → its record."""
    shown = (
        (comparison.method_b, comparison.method_a) if comparison.swapped else (comparison.method_a, comparison.method_b)
    )
    keys = [(method, comparison.asset_id) for method in shown]
    with Image.open(tiles[keys[0]]) as left, Image.open(tiles[keys[1]]) as right:
        image_png = _png_bytes(tile_comparison(left.convert("RGB"), right.convert("RGB")))
    image_path = out_dir / "comparisons" / f"{comparison.comparison_id:05d}.png"
    write_bytes_atomic(image_path, image_png)
    request = ComparisonRequest(
        question=question,
        images=(JudgeImage(CONDITION_CAPTION, condition_png), JudgeImage(COMPARISON_CAPTION, image_png)),
        criteria=criteria,
        num_completions=num_completions,
        measurements=(measurements[keys[0]], measurements[keys[1]]) if measurements else None,
    )
    replies, error = [], None
    try:
        replies = judge.compare(request)
    except JudgeError as judge_error:
        error = str(judge_error)
    parsed = []
    for reply in replies:
        result = parse_reply(reply, len(criteria))
        parsed.append(
            {
                "votes_as_shown": None if result.votes is None else list(result.votes),
                "votes": None if result.votes is None else list(unswap(result.votes, comparison.swapped)),
                "error": result.error,
            }
        )
    return {
        **asdict(comparison),
        "left": shown[0],
        "right": shown[1],
        "views": indices,
        "image": str(image_path.relative_to(out_dir)),
        "criteria": list(criteria),
        "question": question,
        "replies": replies,
        "parsed": parsed,
        "num_malformed": sum(p["votes"] is None for p in parsed),
        "error": error,
    }


def _votes_table(records: Sequence[dict], criteria: Sequence[str]) -> pd.DataFrame:
    """Comparison records → the votes table, one row per valid completion per criterion."""
    rows = []
    for record in records:
        for completion, parsed in enumerate(record["parsed"]):
            for criterion, vote in zip(criteria, parsed["votes"] or ()):
                winner = {1: record["method_a"], 2: record["method_b"]}.get(vote, "draw")
                rows.append(
                    {
                        "comparison_id": record["comparison_id"],
                        "asset_id": record["asset_id"],
                        "method_a": record["method_a"],
                        "method_b": record["method_b"],
                        "criterion": criterion,
                        "vote": vote,
                        "winner": winner,
                        "completion": completion,
                        "swapped": record["swapped"],
                    }
                )
    return pd.DataFrame(rows, columns=list(VOTE_COLUMNS))


def plot_radar(
    table: pd.DataFrame, path: str | os.PathLike, title: str = "Elo ratings", titles: Mapping[str, str] | None = None
) -> Path:
    """Radar chart of a methods × criteria ratings table: one closed polygon per method; saved as PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    titles = titles or {}
    criteria = list(table.columns)
    angles = np.linspace(0.0, 2.0 * np.pi, len(criteria), endpoint=False)
    closed = np.append(angles, angles[0])
    figure = Figure(figsize=(6.5, 6.5))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(projection="polar")
    axes.set_theta_offset(np.pi / 2.0)  # first criterion at the top, the others clockwise
    axes.set_theta_direction(-1)
    values = table.to_numpy(dtype=np.float64)
    finite = values[np.isfinite(values)]
    low, high = (finite.min(), finite.max()) if finite.size else (950.0, 1050.0)
    pad = max(25.0, 0.15 * (high - low))
    for method, ratings in zip(table.index, values):
        ring = np.append(ratings, ratings[0])
        axes.plot(closed, ring, linewidth=1.8, label=str(method))
        axes.fill(closed, ring, alpha=0.12)
    axes.set_xticks(angles)
    axes.set_xticklabels([titles.get(criterion, criterion) for criterion in criteria], fontsize=9)
    axes.set_ylim(low - pad, high + pad)
    axes.tick_params(axis="y", labelsize=7)
    axes.set_title(title, pad=24, fontsize=10)
    axes.legend(
        loc="upper center", bbox_to_anchor=(0.5, -0.08), ncols=min(4, len(table.index)), fontsize=9, frameon=False
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110, bbox_inches="tight")
    return path


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------


class _ConditionCache:
    """Conditioning images are shared by every method's asset of an id: segment and encode each once."""

    def __init__(self) -> None:
        self._loaded: dict[object, tuple[Condition, bytes]] = {}
        self._lock = threading.Lock()

    def _entry(self, image: str | os.PathLike | Image.Image | np.ndarray) -> tuple[Condition, bytes]:
        key = _identity(image)
        with self._lock:
            if key not in self._loaded:
                condition = load_condition(image)
                self._loaded[key] = (condition, _png_bytes(condition.image))
            return self._loaded[key]

    def get(self, image: str | os.PathLike | Image.Image | np.ndarray) -> Condition:
        """The conditioning image as the judge sees it, with its foreground mask."""
        return self._entry(image)[0]

    def png(self, image: str | os.PathLike | Image.Image | np.ndarray) -> bytes:
        """The same image encoded as PNG for the request."""
        return self._entry(image)[1]


def _identity(item: object) -> object:
    """A path's resolved name, or an in-memory object's identity: what makes two inputs the same input."""
    return str(Path(item).resolve()) if isinstance(item, (str, os.PathLike)) else id(item)


def _index_assets(method: str, items: Sequence[Asset | tuple]) -> dict[str, Asset]:
    """A method's assets by id (see `Asset`); ids must be unique within a method."""
    indexed: dict[str, Asset] = {}
    for position, item in enumerate(items):
        asset = item if isinstance(item, Asset) else Asset(*item)
        asset_id = asset.asset_id
        if asset_id is None:
            asset_id = Path(asset.image).stem if isinstance(asset.image, (str, os.PathLike)) else str(position)
        if asset_id in indexed:
            raise ValueError(f"method {method!r} has two assets with id {asset_id!r}; give them distinct asset_id")
        indexed[asset_id] = Asset(asset.mesh, asset.image, asset.gt_mesh, asset_id)
    return indexed


def _frozen_method_names(frozen: Mapping) -> set[str]:
    """Method names in {method: rating} or {criterion: {method: rating}}."""
    names = set()
    for key, value in frozen.items():
        names |= set(value) if isinstance(value, Mapping) else {key}
    return names


def _map_concurrently(function: Callable, items: Sequence, max_workers: int) -> Iterable:
    """Yield `function(item)` for every item as each finishes, at most `max_workers` at a time."""
    with ThreadPoolExecutor(max_workers=max(1, max_workers)) as pool:
        futures = [pool.submit(function, item) for item in items]
        for future in as_completed(futures):
            yield future.result()


def _progress(items: Iterable, enabled: bool, description: str, total: int | None = None) -> Iterable:
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=description, total=total)


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _file_stem(name: str) -> str:
    """A file-system-safe name; a short hash keeps names that had to be changed distinct."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "_"
    return safe if safe == name else f"{safe}-{hashlib.sha1(name.encode('utf-8')).hexdigest()[:8]}"


def _judge_label(description: Mapping[str, object]) -> str:
    label = str(description.get("name", "judge"))
    return f"{label} (PROXY: measured quantities, not a visual judge)" if description.get("is_proxy") else label


def _results_markdown(
    ratings: pd.DataFrame,
    criteria: Sequence[str],
    titles: Mapping[str, str],
    label: str,
    counts: Mapping[str, int],
    config: ArenaConfig,
) -> str:
    method = f"Elo ratings (Bradley–Terry maximum likelihood, {config.mode} mode)"
    if config.n_bootstrap:
        method += f"; {config.confidence:.0%} bootstrap interval over comparisons, {config.n_bootstrap} replicates"
    replies = (
        f"Comparisons: {counts['comparisons']}; replies: {counts['replies']} ({counts['valid_replies']} valid, "
        f"{counts['malformed_replies']} malformed and discarded); failed requests: {counts['failed_requests']}."
    )
    lines = [
        "# Arena results",
        "",
        f"Judge: {label}",
        "",
        method + ".",
        replies,
        "",
        markdown_table(ratings, criteria, titles),
    ]
    return "\n".join(lines)


def _config_record(config: ArenaConfig) -> dict:
    record = asdict(config)
    record["prompts_dir"] = str(config.prompts_dir)
    return record
