"""Validation of rank requests into the policy's inputs: every problem found, each naming its field."""

from __future__ import annotations

import math
from dataclasses import dataclass

from atelier.serving.ids import id_problem
from atelier.serving.rpc import FieldViolation, InvalidArgument
from fashion.v1 import ranker_service_pb2 as pb
from services.ranker.policy import Candidate, Popularity, UserBehaviour

# Violations travel in the trailers, which clients cap (8 KiB by default): a request
# with a thousand bad scores must still get its INVALID_ARGUMENT.
MAX_REPORTED_VIOLATIONS = 10


@dataclass(frozen=True)
class RankInputs:
    candidates: list[Candidate]
    # None for an anonymous request.
    behaviour: UserBehaviour | None
    signals: dict[str, Popularity]
    k: int


def _finite(value: float, field: str, violations: list[FieldViolation]) -> None:
    if not math.isfinite(value):
        violations.append(FieldViolation(field, f"must be a finite number, got {value}"))


def _candidates(request: pb.RankRequest, max_candidates: int, violations: list[FieldViolation]) -> list[Candidate]:
    if len(request.candidates) > max_candidates:
        violations.append(FieldViolation("candidates", f"at most {max_candidates}, got {len(request.candidates)}"))
        return []
    seen: dict[str, int] = {}
    candidates = []
    for i, c in enumerate(request.candidates):
        if problem := id_problem(c.article_id):
            violations.append(FieldViolation(f"candidates[{i}].article_id", problem))
        elif c.article_id in seen:
            violations.append(
                FieldViolation(f"candidates[{i}].article_id", f"duplicate of candidates[{seen[c.article_id]}]")
            )
        else:
            seen[c.article_id] = i
        _finite(c.score, f"candidates[{i}].score", violations)
        candidates.append(Candidate(c.article_id, c.category, c.score))
    return candidates


def _behaviour(request: pb.RankRequest, user_id: str, violations: list[FieldViolation]) -> UserBehaviour | None:
    features = request.user_features
    # Features of someone else must never personalise this user's (or an anonymous) result.
    if features.user_id.strip() and features.user_id.strip() != user_id:
        violations.append(FieldViolation("user_features.user_id", "does not match user_id"))
    affinities: dict[str, float] = {}
    for i, a in enumerate(features.category_affinities):
        _finite(a.score, f"user_features.category_affinities[{i}].score", violations)
        if a.category:
            affinities[a.category] = max(a.score, affinities.get(a.category, a.score))
    if not user_id:
        return None
    return UserBehaviour(frozenset(click.article_id for click in features.recent_clicks), affinities)


def _signals(request: pb.RankRequest, max_candidates: int, violations: list[FieldViolation]) -> dict[str, Popularity]:
    if len(request.item_signals) > max_candidates:
        violations.append(FieldViolation("item_signals", f"at most {max_candidates}, got {len(request.item_signals)}"))
        return {}
    signals: dict[str, Popularity] = {}
    for i, s in enumerate(request.item_signals):
        if problem := id_problem(s.article_id):
            violations.append(FieldViolation(f"item_signals[{i}].article_id", problem))
        elif s.article_id in signals:
            violations.append(FieldViolation(f"item_signals[{i}].article_id", "duplicate article id"))
        for name in ("popularity_1h", "popularity_24h", "popularity_7d"):
            value = getattr(s, name)
            if not value >= 0 or math.isinf(value):
                violations.append(
                    FieldViolation(f"item_signals[{i}].{name}", f"must be a finite number >= 0, got {value}")
                )
        signals[s.article_id] = Popularity(s.popularity_1h, s.popularity_24h, s.popularity_7d)
    return signals


def validate_rank_request(request: pb.RankRequest, max_candidates: int) -> RankInputs:
    """The policy's inputs; raises InvalidArgument naming each bad field (the first few)."""
    violations: list[FieldViolation] = []
    # Proto field order, so the first reported problems are the first fields.
    user_id = request.user_id
    if problem := id_problem(user_id, required=False):
        violations.append(FieldViolation("user_id", problem))
    candidates = _candidates(request, max_candidates, violations)
    behaviour = _behaviour(request, user_id, violations)
    signals = _signals(request, max_candidates, violations)
    if request.k < 0:
        violations.append(FieldViolation("k", f"must not be negative, got {request.k}"))
    if violations:
        raise InvalidArgument(violations[:MAX_REPORTED_VIOLATIONS])
    return RankInputs(candidates, behaviour, signals, request.k)
