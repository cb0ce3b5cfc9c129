"""Arena: Elo fit, reply parsing, HTTP judges against a local server, tiling, offline proxy, a whole run."""

from __future__ import annotations

import base64
import io
import itertools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pandas as pd
import pytest
import trimesh
from PIL import Image

from evaluation.arena import (
    VOTE_COLUMNS,
    AnthropicJudge,
    ArenaConfig,
    Asset,
    ComparisonRequest,
    Judge,
    JudgeError,
    JudgeImage,
    OfflineJudge,
    OpenAIJudge,
    ViewConfig,
    build_question,
    elo_from_csv,
    fit_elo,
    load_condition,
    load_criteria,
    measure_asset,
    parse_reply,
    render_turntable,
    run_arena,
    schedule_comparisons,
    tile_asset,
    tile_comparison,
    view_indices,
)
from evaluation.arena.elo import win_matrix
from evaluation.arena.parsing import unswap
from triposg.rendering import EVALUATION_CAMERA, Camera, RenderResult, normalize_mesh, render

# With 600 votes per simulated pair the standard error of a fitted rating is about 10-15 Elo, so 30 Elo is
# 2-3 standard errors (the simulation is seeded, so the test is deterministic).
ELO_TOLERANCE = 30.0
TRUTH = {"a": 1000.0, "b": 1200.0, "c": 900.0, "d": 1350.0, "e": 1100.0}


def simulate_votes(truth, pairs, votes_per_pair, seed=0, draw_probability=0.0, criterion="overall"):
    """Bradley–Terry votes: P(a beats b) = 1 / (1 + 10^((R_b - R_a) / 400)); some outcomes become draws."""
    rng = np.random.default_rng(seed)
    rows = []
    for a, b in pairs:
        p_a = 1.0 / (1.0 + 10.0 ** ((truth[b] - truth[a]) / 400.0))
        for _ in range(votes_per_pair):
            vote = 3 if rng.random() < draw_probability else (1 if rng.random() < p_a else 2)
            rows.append(
                {"comparison_id": len(rows), "method_a": a, "method_b": b, "criterion": criterion, "vote": vote}
            )
    return pd.DataFrame(rows)


def rating_of(ratings: pd.DataFrame, method: str, criterion: str = "overall") -> pd.Series:
    return ratings.set_index(["criterion", "method"]).loc[(criterion, method)]


# ----------------------------------------------------------------------------------------------
# Elo
# ----------------------------------------------------------------------------------------------

# Two pairs are never compared directly; their gap comes through the other methods.
UNSEEN_PAIRS = {("a", "e"), ("c", "d")}
SIMULATED_PAIRS = [pair for pair in itertools.combinations(TRUTH, 2) if pair not in UNSEEN_PAIRS]


def test_elo_recovers_bradley_terry_ratings_with_unseen_pairs_and_fixed_anchor():
    votes = simulate_votes(TRUTH, SIMULATED_PAIRS, votes_per_pair=600)
    start = time.perf_counter()
    ratings = fit_elo(votes, anchor="a")
    assert time.perf_counter() - start < 1.0
    for method, true_rating in TRUTH.items():
        assert abs(rating_of(ratings, method)["rating"] - true_rating) < ELO_TOLERANCE, method
    anchor = rating_of(ratings, "a")
    assert anchor["rating"] == 1000.0 and anchor["fixed"]
    assert not rating_of(ratings, "d")["fixed"]


def test_a_draw_counts_as_a_win_for_both_sides():
    index_a, index_b = np.array([0, 0, 0, 0]), np.array([1, 1, 1, 1])
    wins = win_matrix(index_a, index_b, np.array([1, 1, 3, 3]), 2)
    np.testing.assert_array_equal(wins, [[0, 4], [2, 0]])
    votes = pd.DataFrame({"method_a": "a", "method_b": "b", "criterion": "overall", "vote": [1, 1, 3, 3]})
    ratings = fit_elo(votes, anchor="b", prior_weight=0.0)
    # 4 wins against 2: P = 2/3 = 1 / (1 + 10^(-d/400)) → d = 400 log10(2).
    assert rating_of(ratings, "a")["rating"] == pytest.approx(1000.0 + 400.0 * np.log10(2.0), abs=0.5)
    only_draws = fit_elo(votes.assign(vote=3), anchor="a")
    assert rating_of(only_draws, "b")["rating"] == pytest.approx(1000.0, abs=0.5)
    assert rating_of(only_draws, "b")["draws"] == 4


def test_an_unbeaten_method_gets_a_large_but_finite_rating():
    votes = pd.DataFrame({"method_a": "a", "method_b": "b", "criterion": "overall", "vote": [1] * 10})
    rating = rating_of(fit_elo(votes, anchor="b"), "a")["rating"]
    assert 1300.0 < rating < 3000.0


def test_new_method_mode_fits_only_the_new_method():
    frozen = {"a": 1000.0, "b": 1200.0, "c": 900.0}
    truth = {**frozen, "new": 1100.0}
    # Votes among the frozen methods that disagree with their ratings must not move them.
    votes = pd.concat(
        [
            simulate_votes(truth, [("new", "a"), ("new", "b"), ("new", "c")], votes_per_pair=600, seed=1),
            simulate_votes({"a": 1500.0, "b": 900.0}, [("a", "b")], votes_per_pair=100, seed=2),
        ],
        ignore_index=True,
    )
    ratings = fit_elo(votes, mode="new_method", frozen=frozen)
    for method, rating in frozen.items():
        assert rating_of(ratings, method)["rating"] == rating and rating_of(ratings, method)["fixed"]
    assert abs(rating_of(ratings, "new")["rating"] - 1100.0) < ELO_TOLERANCE
    with pytest.raises(ValueError, match="frozen"):
        fit_elo(votes, mode="new_method")


def test_bootstrap_interval_contains_the_truth_per_criterion():
    votes = pd.concat(
        [
            simulate_votes(TRUTH, SIMULATED_PAIRS, votes_per_pair=300, seed=3, criterion="overall"),
            simulate_votes(
                {m: 2000.0 - r for m, r in TRUTH.items()}, SIMULATED_PAIRS, 300, seed=4, criterion="alignment"
            ),
        ],
        ignore_index=True,
    )
    ratings = fit_elo(votes, anchor="a", n_bootstrap=100, seed=0)
    assert list(dict.fromkeys(ratings["criterion"])) == ["overall", "alignment"]
    for method, true_rating in TRUTH.items():
        for criterion, truth in (("overall", true_rating), ("alignment", 2000.0 - true_rating)):
            row = rating_of(ratings, method, criterion)
            assert row["ci_low"] <= truth <= row["ci_high"], (method, criterion)
            if method != "a":
                assert 0.0 < row["ci_high"] - row["ci_low"] < 200.0


def test_elo_from_csv_reads_the_votes_format(tmp_path):
    votes = simulate_votes(TRUTH, SIMULATED_PAIRS, votes_per_pair=50)
    # A file with only the winner column works too.
    winner = np.where(votes["vote"] == 1, votes["method_a"], votes["method_b"])
    votes.assign(winner=winner).drop(columns="vote").to_csv(tmp_path / "votes.csv", index=False)
    from_file = elo_from_csv(tmp_path / "votes.csv", anchor="a")
    np.testing.assert_allclose(from_file["rating"], fit_elo(votes, anchor="a")["rating"])
    pd.DataFrame({"method_a": ["a"], "method_b": ["b"], "criterion": ["x"], "vote": [4]}).to_csv(tmp_path / "bad.csv")
    with pytest.raises(ValueError, match="1, 2 or 3"):
        elo_from_csv(tmp_path / "bad.csv")


# ----------------------------------------------------------------------------------------------
# Parsing
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("Alignment: left.\nPlausibility: right.\n1 2 3", (1, 2, 3)),
        ("analysis\n1 2 3\n\n   \n", (1, 2, 3)),  # trailing blank lines
        ("analysis\n   1   2\t3  ", (1, 2, 3)),  # extra spaces
        ("3 3 3", (3, 3, 3)),
        ("analysis\n1 2", None),  # too few
        ("analysis\n1 2 3 1", None),  # too many
        ("analysis\n1 2 4", None),  # outside {1, 2, 3}
        ("analysis\n1 0 2", None),
        ("analysis\nFinal answer: 1 2 3", None),  # text on the last line
        ("analysis\n1, 2, 3", None),  # not whitespace-separated integers
        ("1 2 3\nI hope this helps.", None),  # the votes are not on the last line
        ("analysis\n1 2 -3", None),
        ("", None),
        ("\n\n", None),
    ],
)
def test_parse_reply(reply, expected):
    parsed = parse_reply(reply, num_criteria=3)
    assert parsed.votes == expected
    assert parsed.is_valid == (expected is not None)
    assert (parsed.error is None) == (expected is not None)


def test_unswap_trades_left_and_right_but_keeps_draws():
    assert unswap((1, 2, 3), swapped=True) == (2, 1, 3)
    assert unswap((1, 2, 3), swapped=False) == (1, 2, 3)


def test_question_lists_the_criteria_and_its_example_line_parses():
    criteria = load_criteria()
    question = build_question(criteria, views_per_comparison=4)
    assert all(criterion.title in question for criterion in criteria)
    assert "2×2" in question and "untextured" in question
    assert parse_reply(question, len(criteria)).is_valid  # the example is the question's own last line
    with pytest.raises(ValueError, match="unknown criterion"):
        load_criteria(["alignment", "smell"])


# ----------------------------------------------------------------------------------------------
# HTTP judges against a scripted server on 127.0.0.1
# ----------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_proxy_for_localhost(monkeypatch):
    """urllib honours proxy variables; the scripted server must be reached directly."""
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


class ScriptedServer:
    """A real HTTP server that answers each POST with the next scripted (status, JSON, delay, headers)."""

    def __init__(self, script):
        self.script = list(script)
        self.requests = []  # (path, headers with lower-case names, decoded JSON body)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                status, answer, delay, headers = server.script.pop(0)
                time.sleep(delay)
                try:
                    payload = json.dumps(answer).encode()
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
                    pass

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def answer(status, body, delay=0.0, headers=None):
    return (status, body, delay, headers or {})


def png(color) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buffer, format="PNG")
    return buffer.getvalue()


REQUEST = ComparisonRequest(
    question="Which is better? End with two integers.",
    images=(JudgeImage("Input image:", png((255, 0, 0))), JudgeImage("Comparison image:", png((0, 0, 255)))),
    criteria=("alignment", "overall"),
    num_completions=3,
)
FAST_RETRIES = {"backoff_s": 0.01, "max_backoff_s": 0.05}


def chat_completion(*texts):
    return {"choices": [{"index": i, "message": {"role": "assistant", "content": t}} for i, t in enumerate(texts)]}


def test_openai_judge_speaks_chat_completions_retries_and_caches(tmp_path):
    replies = ["Left matches.\n1 1", "Right is cleaner.\n2 3", "I cannot say."]  # the third is malformed
    with ScriptedServer([answer(500, {"error": "busy"}), answer(200, chat_completion(*replies))]) as server:
        judge = OpenAIJudge(
            model="test-model", base_url=server.url + "/v1", api_key="sk-test", cache=tmp_path / "cache", **FAST_RETRIES
        )
        assert judge.compare(REQUEST) == replies
        assert len(server.requests) == 2  # one 500, then the answer
        path, headers, body = server.requests[-1]
        assert path == "/v1/chat/completions"
        assert headers["authorization"] == "Bearer sk-test"
        assert body["model"] == "test-model" and body["n"] == 3
        content = body["messages"][0]["content"]
        urls = [part["image_url"]["url"] for part in content if part["type"] == "image_url"]
        assert urls == [f"data:image/png;base64,{base64.b64encode(image.png).decode()}" for image in REQUEST.images]
        assert content[-1] == {"type": "text", "text": REQUEST.question}

        assert judge.compare(REQUEST) == replies  # from the cache
        assert len(server.requests) == 2
    parsed = [parse_reply(reply, len(REQUEST.criteria)) for reply in replies]
    assert [p.votes for p in parsed] == [(1, 1), (2, 3), None]


def test_http_judge_retries_429_and_timeouts_and_stops_on_client_errors():
    script = [
        answer(429, {"error": "slow down"}, headers={"Retry-After": "0"}),
        answer(200, chat_completion("late\n1 1"), delay=0.6),  # arrives after the 0.2 s timeout
        answer(200, chat_completion("on time\n2 2")),
        answer(401, {"error": "bad key"}),
        answer(503, {}),
        answer(503, {}),
        answer(503, {}),
    ]
    with ScriptedServer(script) as server:
        judge = OpenAIJudge(model="m", base_url=server.url + "/v1", api_key="k", timeout_s=0.2, **FAST_RETRIES)
        single = ComparisonRequest("q", REQUEST.images, REQUEST.criteria, num_completions=1)
        assert judge.compare(single) == ["on time\n2 2"]
        assert len(server.requests) == 3
        with pytest.raises(JudgeError, match="OPENAI_API_KEY"):
            judge.compare(single)
        assert len(server.requests) == 4  # a 401 is not retried
        judge.max_retries = 2
        with pytest.raises(JudgeError, match="after 3 attempts"):
            judge.compare(single)


def test_anthropic_judge_speaks_messages_one_completion_per_call(tmp_path):
    def message(text):
        return {"type": "message", "role": "assistant", "content": [{"type": "text", "text": text}]}

    script = [answer(529, {"type": "error"}), answer(200, message("a\n1 2")), answer(200, message("b\n1 1"))]
    with ScriptedServer(script) as server:
        judge = AnthropicJudge(
            model="claude-test", base_url=server.url, api_key="ak-test", cache=tmp_path / "cache", **FAST_RETRIES
        )
        request = ComparisonRequest(REQUEST.question, REQUEST.images, REQUEST.criteria, num_completions=2)
        assert judge.compare(request) == ["a\n1 2", "b\n1 1"]
        assert len(server.requests) == 3  # one overloaded answer retried, then one call per completion
        path, headers, body = server.requests[-1]
        assert path == "/v1/messages"
        assert headers["x-api-key"] == "ak-test" and headers["anthropic-version"]
        assert body["model"] == "claude-test" and body["max_tokens"] > 0 and "n" not in body
        blocks = body["messages"][0]["content"]
        sources = [block["source"] for block in blocks if block["type"] == "image"]
        assert sources == [
            {"type": "base64", "media_type": "image/png", "data": base64.b64encode(image.png).decode()}
            for image in REQUEST.images
        ]
        assert blocks[-1] == {"type": "text", "text": REQUEST.question}
        assert judge.compare(request) == ["a\n1 2", "b\n1 1"]  # cached
        assert len(server.requests) == 3


def test_judges_without_a_key_for_the_public_api_name_the_variable(monkeypatch):
    for variable in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(variable, raising=False)
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        OpenAIJudge()
    with pytest.raises(ValueError, match="ANTHROPIC_API_KEY"):
        AnthropicJudge()
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # a local server needs no key
    assert OpenAIJudge(model="local").base_url == "http://127.0.0.1:9/v1"


# ----------------------------------------------------------------------------------------------
# Views and tiling
# ----------------------------------------------------------------------------------------------


def test_view_indices_follow_the_reference():
    assert view_indices(36, 1) == [0]
    assert view_indices(36, 4) == [0, 9, 18, 27]
    assert view_indices(36, 9) == list(range(0, 36, 4))
    assert view_indices(120, 9) == list(range(0, 120, 13))[:9]
    with pytest.raises(ValueError):
        view_indices(36, 2)
    with pytest.raises(ValueError):
        view_indices(3, 4)


def solid_view(rgb_color, normal_color, size=16):
    return RenderResult(
        rgb=np.full((size, size, 3), rgb_color, np.uint8),
        normal=np.full((size, size, 3), normal_color, np.uint8),
        mask=np.ones((size, size), bool),
        depth=np.ones((size, size), np.float32),
        camera=Camera(),
    )


def test_tiles_put_the_rgb_grid_above_the_normal_grid_and_assets_side_by_side():
    size, indices = 16, [0, 9, 18, 27]
    views = {index: solid_view((index, 0, 0), (0, index, 200)) for index in indices}
    tile = np.asarray(tile_asset(views, indices))
    assert tile.shape == (4 * size, 2 * size, 3)  # 2×2 RGB above 2×2 normals
    for position, index in enumerate(indices):
        row, col = divmod(position, 2)
        assert tuple(tile[row * size + 1, col * size + 1]) == (index, 0, 0)
        assert tuple(tile[(2 + row) * size + 1, col * size + 1]) == (0, index, 200)
    other = {index: solid_view((0, 0, 50), (50, 50, 50)) for index in indices}
    comparison = np.asarray(tile_comparison(tile_asset(views, indices), tile_asset(other, indices)))
    assert comparison.shape == (4 * size, 4 * size, 3)
    np.testing.assert_array_equal(comparison[:, : 2 * size], tile)
    single = tile_asset(views, [0])
    assert single.size == (size, 2 * size)


# ----------------------------------------------------------------------------------------------
# Offline proxy judge and whole runs
# ----------------------------------------------------------------------------------------------

RES = 64
SMALL_VIEWS = ViewConfig(num_views=8, resolution=RES)


def upright_cylinder():
    cylinder = trimesh.creation.cylinder(radius=0.4, height=2.0)
    cylinder.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0]))  # axis z → y
    return cylinder


@pytest.fixture(scope="module")
def shapes():
    return {
        "sphere": trimesh.creation.icosphere(subdivisions=2),
        "cylinder": upright_cylinder(),
        "slab": trimesh.creation.box((2.0, 0.4, 0.8)),
    }


@pytest.fixture(scope="module")
def conditioning_images(shapes, tmp_path_factory):
    """Front-view RGB renders (on white) of the sphere and the cylinder: the 'input images'."""
    folder = tmp_path_factory.mktemp("conditions")
    paths = {}
    for name in ("sphere", "cylinder"):
        (view,) = render(normalize_mesh(shapes[name]), EVALUATION_CAMERA, resolution=96)
        paths[name] = folder / f"{name}.png"
        Image.fromarray(view.rgb).save(paths[name])
    return paths


def test_offline_judge_prefers_the_asset_matching_the_input_silhouette(shapes, conditioning_images):
    condition = load_condition(conditioning_images["cylinder"])
    measured = {}
    for name in ("cylinder", "sphere"):
        views = render_turntable(shapes[name], SMALL_VIEWS, [0, 2])
        measured[name] = measure_asset(views, shapes[name], condition.mask)
    assert measured["cylinder"]["silhouette_iou"] > 0.8 > measured["sphere"]["silhouette_iou"]
    judge = OfflineJudge()
    criteria = ("alignment", "texture_geometry_coherency")
    for left, right, expected in (("cylinder", "sphere", (1, 3)), ("sphere", "cylinder", (2, 3))):
        request = ComparisonRequest(
            "q", (), criteria, num_completions=3, measurements=(measured[left], measured[right])
        )
        (reply,) = judge.compare(request)
        assert parse_reply(reply, len(criteria)).votes == expected
    with pytest.raises(JudgeError, match="measured"):
        judge.compare(ComparisonRequest("q", (), criteria))


def test_offline_judge_uses_the_ground_truth_when_there_is_one(shapes, conditioning_images):
    condition = load_condition(conditioning_images["sphere"])
    truth = shapes["sphere"]
    gt_views = render_turntable(truth, SMALL_VIEWS, [0, 4])
    measured = {
        name: measure_asset(
            render_turntable(shapes[name], SMALL_VIEWS, [0, 4]), shapes[name], condition.mask, gt_views, truth
        )
        for name in ("sphere", "slab")
    }
    assert measured["sphere"]["gt_chamfer"] < 0.05 < measured["slab"]["gt_chamfer"]
    assert measured["sphere"]["gt_normal_agreement"] > 0.9 > measured["slab"]["gt_normal_agreement"]
    criteria = ("plausibility", "geometry_details", "overall")
    request = ComparisonRequest("q", (), criteria, measurements=(measured["slab"], measured["sphere"]))
    assert parse_reply(OfflineJudge().compare(request)[0], len(criteria)).votes == (2, 2, 2)


def test_run_arena_with_the_offline_judge_writes_every_output(shapes, conditioning_images, tmp_path):
    images = conditioning_images
    methods = {
        "matching": [Asset(shapes[name], images[name]) for name in ("sphere", "cylinder")],
        "slab": [(shapes["slab"], images[name]) for name in ("sphere", "cylinder")],
        "sphere_only": [(shapes["sphere"], images[name]) for name in ("sphere", "cylinder")],
    }
    config = ArenaConfig(views=SMALL_VIEWS, views_per_comparison=4, n_bootstrap=20)
    result = run_arena(methods, OfflineJudge(), tmp_path / "run", config=config)

    assert result.counts["comparisons"] == 6  # 3 pairs × 2 shared images
    assert result.judge["is_proxy"]
    for name in (
        "votes.csv",
        "ratings.csv",
        "results.csv",
        "results.md",
        "radar.png",
        "comparisons.jsonl",
        "question.txt",
    ):
        assert (tmp_path / "run" / name).is_file(), name
    votes = pd.read_csv(tmp_path / "run" / "votes.csv")
    assert tuple(votes.columns) == VOTE_COLUMNS
    assert len(votes) == 6 * 5  # one reply per comparison from the proxy, five criteria
    markdown = (tmp_path / "run" / "results.md").read_text()
    assert "PROXY" in markdown and "| matching |" in markdown
    with Image.open(tmp_path / "run" / "radar.png") as radar:
        assert radar.size[0] > 200
    records = [json.loads(line) for line in (tmp_path / "run" / "comparisons.jsonl").read_text().splitlines()]
    assert len(records) == 6 and all(record["replies"] and record["question"] for record in records)
    with Image.open(tmp_path / "run" / records[0]["image"]) as image:
        assert image.size == (4 * RES, 4 * RES)

    alignment = result.table["alignment"]
    assert alignment.idxmax() == "matching"
    assert (result.ratings.query("criterion == 'texture_geometry_coherency'")["rating"] == 1000.0).all()
    refit = elo_from_csv(tmp_path / "run" / "votes.csv")
    np.testing.assert_allclose(refit["rating"], result.ratings["rating"])

    # New-method mode: a new method meets the rated ones; their ratings (from ratings.csv) stay as they were.
    known = pd.read_csv(tmp_path / "run" / "ratings.csv")
    methods["cylinder_only"] = [(shapes["cylinder"], images[name]) for name in ("sphere", "cylinder")]
    config = ArenaConfig(views=SMALL_VIEWS, mode="new_method", n_bootstrap=0, max_comparisons_per_pair=1)
    added = run_arena(methods, OfflineJudge(), tmp_path / "added", config=config, frozen=known)
    assert added.counts["comparisons"] == 3  # one per frozen opponent
    merged = added.ratings.merge(known, on=["criterion", "method"], suffixes=("", "_known"))
    np.testing.assert_allclose(merged["rating"], merged["rating_known"])
    assert added.ratings.query("method == 'cylinder_only'")["rating"].notna().all()


class AlwaysLeftJudge(Judge):
    """Says 'left is better' on every criterion, plus one malformed completion per request."""

    name = "always-left"

    def compare(self, request):
        return [f"left\n{' '.join(['1'] * len(request.criteria))}", "no final line"]


def test_run_arena_undoes_the_left_right_swap(shapes, conditioning_images, tmp_path):
    methods = {name: [(shapes[name], conditioning_images["sphere"])] for name in ("sphere", "cylinder", "slab")}
    config = ArenaConfig(views=SMALL_VIEWS, views_per_comparison=1, n_bootstrap=0, seed=3)
    result = run_arena(methods, AlwaysLeftJudge(), tmp_path, criteria=["alignment", "overall"], config=config)
    swaps = [record["swapped"] for record in result.records]
    assert any(swaps) and not all(swaps)  # both orders occur with this seed
    for record in result.records:
        assert record["left"] == (record["method_b"] if record["swapped"] else record["method_a"])
        assert record["num_malformed"] == 1
        rows = result.votes[result.votes["comparison_id"] == record["comparison_id"]]
        assert (rows["winner"] == record["left"]).all()  # the judge always chose the shown left
        # The stored comparison image shows the left method's tile on its left half.
        with (
            Image.open(tmp_path / record["image"]) as image,
            Image.open(tmp_path / "renders" / record["left"] / "sphere.png") as left_tile,
        ):
            np.testing.assert_array_equal(np.asarray(image)[:, :RES], np.asarray(left_tile))
    assert result.counts["malformed_replies"] == 3 and result.counts["valid_replies"] == 3


def test_new_method_schedule_is_round_robin_on_unused_assets():
    asset_ids = {"old1": ["x", "y", "z"], "old2": ["x", "y"], "new": ["x", "y", "z"]}
    schedule = schedule_comparisons(
        asset_ids, np.random.default_rng(0), mode="new_method", frozen_methods=["old1", "old2"]
    )
    pairs = [(c.method_a, c.method_b, c.asset_id) for c in schedule]
    assert len(pairs) == len(set(pairs)) == 5  # every shared asset once per pair
    assert all(a == "new" for a, _, _ in pairs)
    assert {pairs[0][1], pairs[1][1]} == {"old1", "old2"}  # alternating opponents
