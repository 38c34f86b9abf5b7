"""Scorers: a number in [0, 1] per example, higher is better.

Code scorers are plain functions of the example (exact and regex match, length, valid JSON,
retrieval hit rate, answer-context overlap). A judge asks an OpenAI-compatible endpoint for a
score with a rationale; an endpoint that is down, or answers anything but the JSON it was
asked for, raises JudgeError: an evaluation it was part of fails, it never passes."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from stack.errors import StackError

_WORD = re.compile(r"[a-z0-9]+")


class JudgeError(StackError):
    """The judge could not give a score (down, timed out, or answered garbage)."""


@dataclass(frozen=True)
class Example:
    question: str
    answer: str
    expected: str | None = None
    context: tuple[str, ...] = ()
    retrieved: tuple[str, ...] = ()  # ids of the retrieved documents
    relevant: tuple[str, ...] = ()  # ids that should have been retrieved
    extra: dict[str, Any] = field(default_factory=dict)


class Scorer(Protocol):
    @property
    def name(self) -> str: ...

    def score(self, example: Example) -> float: ...


@dataclass(frozen=True)
class ExactMatch:
    name: str = "exact_match"

    def score(self, example: Example) -> float:
        return float(
            example.expected is not None and example.answer.strip() == example.expected.strip()
        )


@dataclass(frozen=True)
class RegexMatch:
    pattern: str
    name: str = "regex_match"

    def score(self, example: Example) -> float:
        return float(re.search(self.pattern, example.answer) is not None)


@dataclass(frozen=True)
class Length:
    min_chars: int = 1
    max_chars: int = 2000
    name: str = "length_ok"

    def score(self, example: Example) -> float:
        return float(self.min_chars <= len(example.answer) <= self.max_chars)


@dataclass(frozen=True)
class JsonValid:
    name: str = "json_valid"

    def score(self, example: Example) -> float:
        try:
            json.loads(example.answer)
        except ValueError:
            return 0.0
        return 1.0


@dataclass(frozen=True)
class RetrievalHitRate:
    """The share of the relevant documents that were retrieved."""

    name: str = "retrieval_hit_rate"

    def score(self, example: Example) -> float:
        if not example.relevant:
            return 1.0
        return len(set(example.relevant) & set(example.retrieved)) / len(set(example.relevant))


@dataclass(frozen=True)
class ContextOverlap:
    """The share of the answer's words found in the context: a cheap groundedness signal."""

    name: str = "context_overlap"

    def score(self, example: Example) -> float:
        words = set(_WORD.findall(example.answer.lower()))
        if not words:
            return 0.0
        context = set(_WORD.findall(" ".join(example.context).lower()))
        return len(words & context) / len(words)


@dataclass(frozen=True)
class Judge:
    """LLM-as-judge: asks `model` at `base_url` (OpenAI-compatible) to score by `criteria`."""

    name: str
    criteria: str
    base_url: str
    model: str
    api_key: str | None = None
    timeout_seconds: float = 60.0

    def score(self, example: Example) -> float:
        prompt = (
            f"Criteria: {self.criteria}\n\nQuestion: {example.question}\n\n"
            f"Context:\n{chr(10).join(example.context) or '(none)'}\n\nAnswer: {example.answer}\n\n"
            'Reply with JSON only: {"score": <a number from 0 to 1>, "rationale": "<why>"}'
        )
        body = {
            "model": self.model,
            "messages": [
                {"role": "system", "content": "You grade answers strictly and reply in JSON."},
                {"role": "user", "content": prompt},
            ],
            "temperature": 0,
        }
        reply = self._post(body)
        try:
            content = reply["choices"][0]["message"]["content"]
            verdict = json.loads(_strip_fence(content))
            value = float(verdict["score"])
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise JudgeError(
                f"judge {self.name} answered something that is not a score: {exc}"
            ) from None
        if not 0.0 <= value <= 1.0:
            raise JudgeError(f"judge {self.name} gave {value}, outside [0, 1]")
        return value

    def _post(self, body: dict[str, Any]) -> Any:
        url = self.base_url.rstrip("/")
        if not url.endswith("/chat/completions"):
            url += "/v1/chat/completions" if not url.endswith("/v1") else "/chat/completions"
        headers = {"content-type": "application/json"}
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(
            url, data=json.dumps(body).encode(), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_seconds) as answer:
                return json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            raise JudgeError(f"judge {self.name}: {url} answered {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise JudgeError(
                f"judge {self.name}: {url} unreachable ({getattr(exc, 'reason', exc)})"
            ) from None
        except ValueError:
            raise JudgeError(
                f"judge {self.name}: {url} answered something that is not JSON"
            ) from None


def _strip_fence(text: str) -> str:
    """Models like to wrap JSON in ``` fences."""
    text = text.strip()
    if text.startswith("```"):
        text = text.strip("`").removeprefix("json").strip()
    return text


CODE_SCORERS: dict[str, type[Any]] = {
    "exact_match": ExactMatch,
    "json_valid": JsonValid,
    "retrieval_hit_rate": RetrievalHitRate,
    "context_overlap": ContextOverlap,
    "length_ok": Length,
}


def mean_scores(scorers: Sequence[Scorer], examples: Sequence[Example]) -> dict[str, float]:
    if not examples:
        raise StackError("an evaluation needs at least one example")
    return {s.name: sum(s.score(e) for e in examples) / len(examples) for s in scorers}


def stack_judge(judge_section: Any, name: str, criteria: str) -> Judge:
    """A judge on the endpoint the stack file names (`judge: {base_url, model, api_key}`)."""
    if judge_section is None:
        raise StackError(
            f"scorer {name!r} is an LLM judge, and the stack file names no `judge:` endpoint "
            "(judge: {base_url: http://…, model: …, api_key: ${JUDGE_API_KEY}})"
        )
    key = judge_section.api_key.get_secret_value() if judge_section.api_key else None
    return Judge(
        name,
        criteria,
        judge_section.base_url,
        judge_section.model,
        api_key=key,
        timeout_seconds=judge_section.timeout_seconds,
    )
