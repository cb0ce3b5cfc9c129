"""Judges: whoever looks at a comparison and answers in the reference's reply format.

All judges share one interface, `Judge.compare(request) -> list[str]`, one reply text per completion;
`evaluation.arena.parsing` reads every reply the same way, whichever judge wrote it.

- `OpenAIJudge`: any OpenAI-compatible chat-completions server (OpenAI, vLLM, llama.cpp, Ollama, ...).
  Base URL (including `/v1`), model and key from the arguments or `OPENAI_BASE_URL`, `OPENAI_MODEL`,
  `OPENAI_API_KEY`; images travel as base64 PNG data URLs; `n` completions per request (if a server
  returns fewer, the rest are asked for again).
- `AnthropicJudge`: the Anthropic messages API (`ANTHROPIC_BASE_URL`, `ANTHROPIC_MODEL`,
  `ANTHROPIC_API_KEY`); images as base64 image blocks; the API returns one completion per call, so a
  request for n votes makes n calls.
- `OfflineJudge`: a *proxy* that needs no network: it decides each criterion from measured quantities
  (silhouette agreement with the conditioning image, closeness to a ground-truth mesh when there is one,
  ...; see `measure_asset`) and writes its reply in the same format. Its ratings measure those quantities,
  not human-aligned preference; every output of a run with it is labelled as a proxy.

The HTTP judges retry 429, 5xx, timeouts and dropped connections with exponential backoff (honouring
`Retry-After`), time out each request, let at most `max_concurrency` requests run at once (an endpoint's
rate limit belongs to the judge, whoever calls it), and can keep replies in an on-disk `ResponseCache`
keyed by a hash of the request content (judge kind, model, prompt text, image bytes, n, sampling settings).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import random
import threading
import time
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh
from PIL import Image
from scipy import ndimage

from triposg.io import write_bytes_atomic
from triposg.rendering import normalize_mesh

from ..metrics import chamfer_distance
from .parsing import CANNOT_DECIDE, LEFT_BETTER, RIGHT_BETTER
from .views import TurntableViews

OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"
OPENAI_DEFAULT_MODEL = "gpt-4o"
ANTHROPIC_DEFAULT_BASE_URL = "https://api.anthropic.com"
ANTHROPIC_DEFAULT_MODEL = "claude-3-5-sonnet-latest"  # the paper's judge was Claude 3.5 (§7.1)
ANTHROPIC_VERSION = "2023-06-01"  # the messages API version header

RETRYABLE_STATUS = frozenset({408, 409, 429}) | frozenset(range(500, 600))


class JudgeError(RuntimeError):
    """A judge could not answer a request (after its retries); the message names the cause."""


@dataclass(frozen=True)
class JudgeImage:
    """One image of a question: `png` the encoded bytes, `caption` the text placed just before it."""

    caption: str
    png: bytes


@dataclass(frozen=True)
class ComparisonRequest:
    """One question to a judge.

    Attributes:
        question: the full instruction text (layout, criteria, answer format).
        images: in order: the conditioning image, then the tiled comparison (left asset | right asset).
        criteria: criterion keys in the order the question asks them (the reply's last line follows it).
        num_completions: completions (votes) wanted; the reference asks for 3.
        measurements: (left, right) measured quantities of the two assets as shown, for the offline proxy
            judge only (see `measure_asset`); not sent anywhere and not part of the cache key.
    """

    question: str
    images: tuple[JudgeImage, ...]
    criteria: tuple[str, ...]
    num_completions: int = 3
    measurements: tuple[Mapping[str, float], Mapping[str, float]] | None = None


class Judge(ABC):
    """Answers a `ComparisonRequest` with reply texts whose last line holds one vote per criterion."""

    name: str = "judge"
    is_proxy: bool = False  # True for judges that are not an LMM's preference
    needs_measurements: bool = False  # True when requests must carry `measurements`
    max_concurrency: int = 1  # requests the caller may run at once

    @abstractmethod
    def compare(self, request: ComparisonRequest) -> list[str]:
        """Reply texts, one per completion (a proxy may return fewer than asked; see its docstring)."""

    def describe(self) -> dict[str, object]:
        """What to record about this judge in a run's summary."""
        return {"name": self.name, "is_proxy": self.is_proxy}


# ----------------------------------------------------------------------------------------------
# Response cache
# ----------------------------------------------------------------------------------------------


class ResponseCache:
    """Replies on disk, one JSON file per request key; safe to share between threads and processes."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> list[str] | None:
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            replies = json.loads(path.read_text(encoding="utf-8"))["replies"]
        except (OSError, ValueError, KeyError):  # a damaged entry is a miss, and will be overwritten
            return None
        return [str(reply) for reply in replies]

    def put(self, key: str, replies: Sequence[str], metadata: Mapping[str, object] | None = None) -> None:
        record = {"replies": list(replies), **(metadata or {})}
        write_bytes_atomic(self._path(key), json.dumps(record, ensure_ascii=False, indent=1).encode("utf-8"))


# ----------------------------------------------------------------------------------------------
# HTTP judges
# ----------------------------------------------------------------------------------------------


class _HTTPJudge(Judge):
    """Shared HTTP machinery: settings from the environment, the user message, JSON POST with timeout,
    retries with backoff, the concurrency limit and the cache. Subclasses name their API.

    Args:
        model, base_url, api_key: default to `<ENV_PREFIX>_MODEL`, `<ENV_PREFIX>_BASE_URL` and
            `<ENV_PREFIX>_API_KEY`, then to the public API; a key is required only for the public API.
        timeout_s: per HTTP request.
        max_retries: retries after the first attempt on 408/409/429/5xx, timeouts and dropped connections.
        backoff_s, max_backoff_s: delay before retry k is `backoff_s * 2^k` (+0-25% jitter), at most
            `max_backoff_s`; a `Retry-After` header in seconds is used instead when the server sends one.
        max_concurrency: HTTP requests in flight at once, across all threads using this judge.
        max_tokens, temperature: sampling settings (temperature None = the server's default).
        cache: a `ResponseCache` or its directory; None = no cache.
    """

    kind = "http"
    env_prefix = ""
    default_base_url = ""
    default_model = ""

    def __init__(
        self,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        max_retries: int = 5,
        backoff_s: float = 2.0,
        max_backoff_s: float = 60.0,
        max_concurrency: int = 4,
        max_tokens: int = 2048,
        temperature: float | None = None,
        cache: ResponseCache | str | os.PathLike | None = None,
    ) -> None:
        if max_concurrency < 1 or max_retries < 0 or timeout_s <= 0:
            raise ValueError("max_concurrency must be >= 1, max_retries >= 0 and timeout_s > 0")
        self.base_url = (base_url or os.environ.get(f"{self.env_prefix}_BASE_URL") or self.default_base_url).rstrip("/")
        self.api_key = api_key or os.environ.get(f"{self.env_prefix}_API_KEY")
        if self.api_key is None and self.base_url == self.default_base_url:
            raise ValueError(
                f"the public {self.kind} API needs a key: set {self.env_prefix}_API_KEY, or set "
                f"{self.env_prefix}_BASE_URL / base_url to a compatible server that needs none"
            )
        self.model = model or os.environ.get(f"{self.env_prefix}_MODEL") or self.default_model
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_concurrency = max_concurrency
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.cache = ResponseCache(cache) if isinstance(cache, (str, os.PathLike)) else cache
        self.name = f"{self.kind}:{self.model}"
        self._slots = threading.BoundedSemaphore(max_concurrency)

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "kind": self.kind, "model": self.model, "base_url": self.base_url}

    def cache_key(self, request: ComparisonRequest) -> str:
        """SHA-256 of everything that shapes the replies: judge kind, model, text, images, n, sampling."""
        content = {
            "kind": self.kind,
            "model": self.model,
            "question": request.question,
            "images": [[image.caption, hashlib.sha256(image.png).hexdigest()] for image in request.images],
            "n": request.num_completions,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
        }
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode("utf-8")).hexdigest()

    def compare(self, request: ComparisonRequest) -> list[str]:
        key = self.cache_key(request) if self.cache is not None else None
        if key is not None:
            cached = self.cache.get(key)
            if cached is not None:
                return cached
        replies = self._complete(request)
        if key is not None:
            self.cache.put(key, replies, {"judge": self.name})
        return replies

    @abstractmethod
    def _complete(self, request: ComparisonRequest) -> list[str]:
        """Ask the server for `request.num_completions` replies."""

    @abstractmethod
    def _image_block(self, png: bytes) -> dict:
        """One image as this API's message content part."""

    def _user_content(self, request: ComparisonRequest) -> list[dict]:
        """The user message: each image after its caption, then the question."""
        content: list[dict] = []
        for image in request.images:
            content += [{"type": "text", "text": image.caption}, self._image_block(image.png)]
        content.append({"type": "text", "text": request.question})
        return content

    def _sampling(self) -> dict:
        return {"max_tokens": self.max_tokens} | ({} if self.temperature is None else {"temperature": self.temperature})

    def _post_json(self, url: str, headers: Mapping[str, str], body: Mapping[str, object]) -> dict:
        """POST `body` as JSON and return the decoded JSON answer, retrying transient failures."""
        data = json.dumps(body).encode("utf-8")
        last_error = "no attempt made"
        for attempt in range(self.max_retries + 1):
            retry_after = None
            http_request = urllib.request.Request(
                url, data=data, method="POST", headers={"Content-Type": "application/json", **headers}
            )
            try:
                with self._slots, urllib.request.urlopen(http_request, timeout=self.timeout_s) as response:
                    payload = response.read()
            except urllib.error.HTTPError as error:
                detail = error.read()[:500].decode("utf-8", "replace")
                last_error = f"HTTP {error.code}: {detail}"
                if error.code not in RETRYABLE_STATUS:
                    hint = f"; check {self.env_prefix}_API_KEY" if error.code in (401, 403) else ""
                    raise JudgeError(f"{self.name} at {url} refused the request ({last_error}){hint}") from error
                retry_after = error.headers.get("Retry-After")
            except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException) as error:
                last_error = f"{type(error).__name__}: {getattr(error, 'reason', error)}"
            else:
                try:
                    return json.loads(payload)
                except ValueError as error:
                    raise JudgeError(f"{self.name} at {url} answered with invalid JSON: {error}") from error
            if attempt < self.max_retries:
                time.sleep(self._delay(attempt, retry_after))
        raise JudgeError(f"{self.name} at {url} failed after {self.max_retries + 1} attempts; last error: {last_error}")

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        """Exponential backoff with 0-25% jitter, or the server's Retry-After (seconds), capped."""
        if retry_after is not None:
            try:
                return min(max(float(retry_after), 0.0), self.max_backoff_s)
            except ValueError:  # an HTTP date: fall back to our own schedule
                pass
        return min(self.backoff_s * 2**attempt, self.max_backoff_s) * (1.0 + 0.25 * random.random())


def _base64(png: bytes) -> str:
    return base64.b64encode(png).decode("ascii")


class OpenAIJudge(_HTTPJudge):
    """OpenAI-compatible chat completions: POST `{base_url}/chat/completions` (base URL including `/v1`),
    images as base64 PNG data URLs, n completions per call.

    Settings from `OPENAI_BASE_URL` (default the OpenAI API), `OPENAI_MODEL` (default gpt-4o) and
    `OPENAI_API_KEY`; other arguments as `_HTTPJudge`. Servers that ignore `n` and answer once are asked
    again for the remaining completions.
    """

    kind = "openai"
    env_prefix = "OPENAI"
    default_base_url = OPENAI_DEFAULT_BASE_URL
    default_model = OPENAI_DEFAULT_MODEL

    def _image_block(self, png: bytes) -> dict:
        return {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{_base64(png)}"}}

    def request_body(self, request: ComparisonRequest, num_completions: int) -> dict:
        """The chat-completions JSON body asking for `num_completions` completions."""
        messages = [{"role": "user", "content": self._user_content(request)}]
        return {"model": self.model, "messages": messages, "n": num_completions, **self._sampling()}

    def _complete(self, request: ComparisonRequest) -> list[str]:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        replies: list[str] = []
        for _ in range(request.num_completions):  # at most n calls, for servers that ignore `n`
            wanted = request.num_completions - len(replies)
            answer = self._post_json(f"{self.base_url}/chat/completions", headers, self.request_body(request, wanted))
            choices = answer.get("choices") if isinstance(answer, dict) else None
            if not choices:
                raise JudgeError(f"{self.name} answered without choices: {str(answer)[:300]}")
            replies += [_message_text(choice.get("message", {}).get("content")) for choice in choices][:wanted]
            if len(replies) >= request.num_completions:
                break
        return replies


def _message_text(content: object) -> str:
    """A chat message's content as text: a string, or the text parts of a list of parts; None → ""."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


class AnthropicJudge(_HTTPJudge):
    """Anthropic messages API: POST `{base_url}/v1/messages`, images as base64 image blocks, one completion
    per call (n calls for n votes).

    Settings from `ANTHROPIC_BASE_URL` (default the Anthropic API), `ANTHROPIC_MODEL` (default Claude 3.5
    Sonnet, the paper's judge) and `ANTHROPIC_API_KEY`; other arguments as `_HTTPJudge`.
    """

    kind = "anthropic"
    env_prefix = "ANTHROPIC"
    default_base_url = ANTHROPIC_DEFAULT_BASE_URL
    default_model = ANTHROPIC_DEFAULT_MODEL

    def _image_block(self, png: bytes) -> dict:
        return {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": _base64(png)}}

    def request_body(self, request: ComparisonRequest) -> dict:
        """The messages JSON body (one user turn); the API has no `n`."""
        return {
            "model": self.model,
            "messages": [{"role": "user", "content": self._user_content(request)}],
            **self._sampling(),
        }

    def _complete(self, request: ComparisonRequest) -> list[str]:
        headers = {"anthropic-version": ANTHROPIC_VERSION} | ({"x-api-key": self.api_key} if self.api_key else {})
        body = self.request_body(request)
        replies = []
        for _ in range(request.num_completions):
            answer = self._post_json(f"{self.base_url}/v1/messages", headers, body)
            blocks = answer.get("content") if isinstance(answer, dict) else None
            if not isinstance(blocks, list):
                raise JudgeError(f"{self.name} answered without content: {str(answer)[:300]}")
            replies.append("".join(block.get("text", "") for block in blocks if block.get("type") == "text"))
        return replies


# ----------------------------------------------------------------------------------------------
# Offline proxy judge
# ----------------------------------------------------------------------------------------------

SILHOUETTE_SIZE = 128  # side of the scale- and position-normalised silhouettes compared for alignment
GT_CHAMFER_POINTS = 5000  # surface samples per mesh for the proxy's Chamfer distance (a ranking, not a metric)

# Measured quantities (see `measure_asset`): name -> True when higher is better.
MEASUREMENTS = {
    "silhouette_iou": True,  # front view vs the conditioning image's foreground
    "main_component_share": True,  # surface area share of the largest connected part (floaters lower it)
    "normal_detail": True,  # mean angle (rad) between neighbouring normal-map pixels: surface detail
    "gt_chamfer": False,  # Chamfer distance to the ground-truth mesh, both normalised
    "gt_normal_agreement": True,  # per view: silhouette IoU × mean normal cosine vs ground-truth renders
}
# Criterion -> measurements the proxy decides it by, first the one used when both assets have it.
PROXY_CRITERIA = {
    "alignment": ("silhouette_iou",),
    "plausibility": ("gt_chamfer", "main_component_share"),
    "geometry_details": ("gt_normal_agreement", "normal_detail"),
}
OVERALL_CRITERION = "overall"  # the proxy's overall: majority of its decided criteria above


def measure_asset(
    views: TurntableViews,
    mesh: trimesh.Trimesh,
    condition_mask: np.ndarray,
    gt_views: TurntableViews | None = None,
    gt_mesh: trimesh.Trimesh | None = None,
) -> dict[str, float]:
    """The quantities the offline proxy judge compares, for one asset (keys and meaning in `MEASUREMENTS`).

    Args:
        views: the asset's turntable renders; view 0 (the front) must be among them.
        mesh: the asset's mesh (any scale; normalised here for the ground-truth comparison).
        condition_mask: (H, W) bool foreground of the conditioning image.
        gt_views: the ground-truth mesh's renders of the same views, when there is a ground truth.
        gt_mesh: the ground-truth mesh, likewise.
    """
    if 0 not in views:
        raise ValueError("the front view (index 0) is needed to compare with the conditioning image")
    measured = {
        "silhouette_iou": _iou(_normalized_silhouette(views[0].mask), _normalized_silhouette(condition_mask)),
        "main_component_share": _main_component_share(mesh),
        "normal_detail": float(np.mean([_normal_detail(view.normal, view.mask) for view in views.values()])),
    }
    if gt_views is not None:
        measured["gt_normal_agreement"] = float(
            np.mean([_normal_agreement(views[index], gt_views[index]) for index in views if index in gt_views])
        )
    if gt_mesh is not None:
        measured["gt_chamfer"] = chamfer_distance(
            normalize_mesh(mesh), normalize_mesh(gt_mesh), num_points=GT_CHAMFER_POINTS, seed=0
        )
    return measured


class OfflineJudge(Judge):
    """A proxy judge without network access; it decides from measured quantities, not from looking.

    Per criterion (when both assets have the measurement; otherwise the next one in `PROXY_CRITERIA`):
    - alignment: silhouette IoU of the front view with the conditioning image's foreground, each silhouette
      cropped to its bounding box and scaled to a common square (scale and position do not count);
    - plausibility: Chamfer distance to the ground-truth mesh, else the area share of the largest connected
      part (floating pieces lower it);
    - geometry_details: agreement of silhouettes and normals with the ground truth's renders, else the mean
      angle between neighbouring normal-map pixels (more surface variation; noise counts as detail too);
    - overall: the majority of the three decisions above (a tie → 3);
    - texture criteria and any other criterion: 3 (cannot decide): the proxy does not measure texture.
    A criterion is decided only when the two values differ by more than `relative_margin` of the larger;
    otherwise the answer is 3. Replies name the values used and end with the usual line of votes.

    The proxy is deterministic, so it returns one reply whatever `num_completions` asks: repeating it
    would multiply identical votes and shrink the bootstrap intervals without new information.
    """

    name = "offline-proxy"
    is_proxy = True
    needs_measurements = True

    def __init__(self, relative_margin: float = 0.02, max_concurrency: int = 2) -> None:
        self.relative_margin = relative_margin
        self.max_concurrency = max_concurrency

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "kind": "offline", "relative_margin": self.relative_margin}

    def compare(self, request: ComparisonRequest) -> list[str]:
        if request.measurements is None:
            raise JudgeError("the offline proxy judge needs measured quantities in the request (see measure_asset)")
        left, right = request.measurements
        decided = {criterion: self._decide(keys, left, right) for criterion, keys in PROXY_CRITERIA.items()}
        lines, votes = [], []
        for position, criterion in enumerate(request.criteria, start=1):
            if criterion in decided:
                vote, reason = decided[criterion]
            elif criterion == OVERALL_CRITERION:
                vote, reason = self._majority([vote for vote, _ in decided.values()])
            else:
                vote, reason = CANNOT_DECIDE, "not measured by the proxy"
            lines.append(f"{position}. {criterion}: {reason} -> {vote}")
            votes.append(vote)
        return [
            "\n".join(
                [
                    "Offline proxy judge (measured quantities, not a visual judgement).",
                    *lines,
                    " ".join(map(str, votes)),
                ]
            )
        ]

    def _decide(self, keys: Sequence[str], left: Mapping[str, float], right: Mapping[str, float]) -> tuple[int, str]:
        for key in keys:
            if key in left and key in right:
                a, b = float(left[key]), float(right[key])
                text = f"{key} left {a:.4g}, right {b:.4g}"
                if abs(a - b) <= self.relative_margin * max(abs(a), abs(b), 1e-12):
                    return CANNOT_DECIDE, text
                left_better = (a > b) == MEASUREMENTS[key]
                return (LEFT_BETTER if left_better else RIGHT_BETTER), text
        return CANNOT_DECIDE, f"no measurement of {', '.join(keys)} for both assets"

    @staticmethod
    def _majority(votes: Sequence[int]) -> tuple[int, str]:
        left, right = votes.count(LEFT_BETTER), votes.count(RIGHT_BETTER)
        vote = LEFT_BETTER if left > right else RIGHT_BETTER if right > left else CANNOT_DECIDE
        return vote, f"{left} criteria favour left, {right} favour right"


def _normalized_silhouette(mask: np.ndarray, size: int = SILHOUETTE_SIZE) -> np.ndarray:
    """(size, size) bool: the mask cropped to its bounding box, centred in a square of the box's long
    side and resized, so silhouettes of any scale and position compare by shape."""
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return np.zeros((size, size), dtype=bool)
    crop = mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    side = max(crop.shape)
    square = np.zeros((side, side), dtype=np.uint8)
    top, left = (side - crop.shape[0]) // 2, (side - crop.shape[1]) // 2
    square[top : top + crop.shape[0], left : left + crop.shape[1]] = crop * 255
    return np.asarray(Image.fromarray(square).resize((size, size), Image.Resampling.BILINEAR)) >= 128


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def _decoded_normals(normal_map: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 normal map (`triposg.rendering` encoding) → unit vectors."""
    normals = normal_map.astype(np.float32) / 255.0 * 2.0 - 1.0
    return normals / np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-6)


def _normal_detail(normal_map: np.ndarray, mask: np.ndarray) -> float:
    """Mean angle (radians) between horizontally and vertically neighbouring normals inside the silhouette
    (edge pixels, blended with the background, are left out)."""
    normals = _decoded_normals(normal_map)
    inside = ndimage.binary_erosion(mask, iterations=2)
    angles = []
    for axis in (0, 1):
        both = inside & np.roll(inside, -1, axis=axis)
        cosine = np.sum(normals * np.roll(normals, -1, axis=axis), axis=-1)[both]
        angles.append(np.arccos(np.clip(cosine, -1.0, 1.0)))
    values = np.concatenate(angles)
    return float(values.mean()) if values.size else 0.0


def _normal_agreement(view, gt_view) -> float:
    """Silhouette IoU × mean cosine between the two normal maps where both silhouettes overlap."""
    both = view.mask & gt_view.mask
    if not both.any():
        return 0.0
    cosine = np.sum(_decoded_normals(view.normal)[both] * _decoded_normals(gt_view.normal)[both], axis=-1)
    return _iou(view.mask, gt_view.mask) * float(np.clip(cosine, -1.0, 1.0).mean())


def _main_component_share(mesh: trimesh.Trimesh) -> float:
    """Share of the surface area in the largest face-connected part."""
    labels = trimesh.graph.connected_component_labels(mesh.face_adjacency, node_count=len(mesh.faces))
    areas = np.bincount(labels, weights=mesh.area_faces)
    return float(areas.max() / areas.sum()) if areas.sum() > 0 else 0.0


def make_judge(kind: str, **kwargs) -> Judge:
    """ "openai", "anthropic" or "offline" → that judge, with its keyword arguments (see each class)."""
    judges = {"openai": OpenAIJudge, "anthropic": AnthropicJudge, "offline": OfflineJudge}
    if kind not in judges:
        raise ValueError(f"judge must be one of {sorted(judges)}, got {kind!r}")
    return judges[kind](**kwargs)
