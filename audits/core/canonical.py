"""RFC 8785 JSON Canonicalization Scheme (JCS) for audit leaves, plus a strict parser.

Why: a leaf is hashed as bytes, so "the same event" must always be the same bytes, whoever
serialises it. JCS fixes every degree of freedom JSON leaves open (key order, whitespace, string
escapes, number formatting), and its output is ordinary JSON any auditor can read. The encoding
itself is delegated to the ``rfc8785`` package; this module adds the strictness JCS assumes of its
input (I-JSON, RFC 7493) but Python's ``json`` module does not enforce:

* duplicate object keys are an error, not "last one wins" (otherwise two parsers could disagree
  about what a leaf says while agreeing on its hash);
* ``NaN``/``Infinity`` and numbers that overflow to infinity are errors;
* the input must be UTF-8 (``json.loads`` on bytes would also guess UTF-16/32) and may not
  contain lone surrogates, which have no UTF-8 form;
* integers must be exactly representable as IEEE 754 doubles (|n| <= 2**53 - 1), because JCS
  defines every number as a double; larger values are rejected rather than silently rounded.

Non-integer numbers are legal JCS and are encoded per RFC 8785 section 3.2.2.3 (ECMAScript
shortest round-trip form), but the audit service writes measured values as decimal strings so no
binary rounding ever touches audit data; ``canonical_bytes(obj, allow_floats=False)`` enforces that.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

import rfc8785

__all__ = ["CanonicalError", "MAX_SAFE_INT", "canonical_bytes", "is_canonical", "parse_strict"]

MAX_SAFE_INT = 2**53 - 1
"""Largest integer magnitude JCS can carry exactly (IEEE 754 double precision)."""


class CanonicalError(ValueError):
    """The value cannot be canonicalised, or the bytes are not strict JSON."""


def _reject_floats(obj: Any, path: str = "$") -> None:
    """Raise if any float appears (``allow_floats=False``): walk only what JSON can hold."""
    if isinstance(obj, float):
        raise CanonicalError(f"float at {path}; encode non-integer numbers as strings")
    if isinstance(obj, dict):
        for key, value in obj.items():
            _reject_floats(value, f"{path}.{key}")
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            _reject_floats(value, f"{path}[{i}]")


class _FloatSeen(Exception):
    """Internal signal: the fast path met a float and must hand over to ``rfc8785``."""


def _float_seen(text: str) -> Any:
    raise _FloatSeen


def _plain_float(text: str) -> float:
    """A float whose Python ``repr`` is already its RFC 8785 form, or ``_FloatSeen``.

    JCS writes a double with the shortest digits that round-trip (``rfc8785`` takes them from
    ``str(f)``) and reformats only three cases: an exponent (``1e-07``, ``1e+16``), a whole value
    (``2.0`` becomes ``2``) and negative zero. A positional text with a fraction is none of them,
    so it is byte for byte what JCS writes; anything else goes to ``rfc8785``. Report results and
    gate evidence (accuracy 0.91, a p-value) are such floats: before, every one of them sent the
    whole value through ``rfc8785``'s pure-Python encoder, 3 % of a loaded server's CPU.
    """
    if "e" in text or "E" in text or text.endswith(".0"):
        raise _FloatSeen
    return float(text)


def _safe_int(text: str) -> int:
    value = int(text)
    if -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
        return value
    raise CanonicalError(f"integer {text} outside +/-(2**53 - 1)")


def _make_fast_encoder() -> Callable[[Any], str]:
    """Compact, key-sorted, non-ASCII-preserving JSON encoder (CPython's C encoder when present).

    Its output equals RFC 8785 for values without floats whose keys have no characters outside
    the Basic Multilingual Plane: then code point order is UTF-16 code unit order, and its string
    escapes and integer digits are exactly RFC 8785's. ``_fast_canonical`` checks those
    conditions on every call.
    """
    c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
    if c_make_encoder is not None:
        encoder = c_make_encoder(None, None, json.encoder.encode_basestring, None, ":", ",", True, False, False)
        return lambda value: "".join(encoder(value, 0))
    return json.JSONEncoder(  # pragma: no cover - non-CPython
        ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False, check_circular=False
    ).encode


_fast_encode = _make_fast_encoder()
_fast_decode = json.JSONDecoder(parse_int=_safe_int, parse_float=_float_seen).decode
_fast_decode_floats = json.JSONDecoder(parse_int=_safe_int, parse_float=_plain_float).decode
_NON_BMP = re.compile("[\U00010000-\U0010ffff]")


def _fast_canonical(obj: Any, floats: bool = False) -> bytes | None:
    """JCS bytes of ``obj`` via the C encoder, or None when that cannot be proven equal to JCS.

    Proof by round trip: the text decodes (with unsafe ints refused, and floats refused or, with
    ``floats``, accepted only in a form JCS writes the same: ``_plain_float``) to a value equal
    to ``obj``, so ``obj`` holds only str-keyed dicts, lists, str, safe ints, bools, None and such
    floats, and the text has no non-BMP characters. Anything else (tuples, other floats, exotic
    types, lone surrogates, ...) returns None and goes through ``rfc8785``, which decides or raises.
    """
    try:
        text = _fast_encode(obj)
        if not text.isascii() and _NON_BMP.search(text):
            return None
        data = text.encode("utf-8")  # lone surrogates raise UnicodeEncodeError
        if (_fast_decode_floats if floats else _fast_decode)(text) != obj:
            return None
    except (TypeError, ValueError, RecursionError, OverflowError, _FloatSeen):
        return None
    return data


def _whole_floats_as_ints(obj: Any) -> Any:
    """``obj`` with each whole float (``1.0``, ``-0.0``) within the safe range as the integer JCS writes.

    JCS treats every number as a double, so ``1.0`` and ``1`` are the same value and both are
    written ``1``; Python writes ``1.0``. Swapping them lets such values take the fast path (a
    model's precision of 1.0, a bias difference of 0.0: most report results hold one). Only exact
    dicts and lists are walked; anything else is left for the round trip to judge.
    """
    kind = type(obj)
    if kind is float:
        return int(obj) if obj.is_integer() and -MAX_SAFE_INT <= obj <= MAX_SAFE_INT else obj
    if kind is dict:
        return {key: _whole_floats_as_ints(value) for key, value in obj.items()}
    if kind is list:
        return [_whole_floats_as_ints(value) for value in obj]
    return obj


def canonical_bytes(obj: Any, *, allow_floats: bool = True) -> bytes:
    """The RFC 8785 canonical UTF-8 encoding of ``obj``.

    ``obj`` may contain dicts with str keys, lists/tuples, str, int (|n| <= 2**53 - 1), bool,
    None and (unless ``allow_floats`` is False) finite floats. Anything else raises
    ``CanonicalError``, as do NaN/Infinity, out-of-range ints and strings with lone surrogates.
    Typical audit events take a C-speed path that is checked to be identical to JCS.
    """
    fast = _fast_canonical(obj, floats=allow_floats)
    if fast is None and allow_floats:
        try:
            fast = _fast_canonical(_whole_floats_as_ints(obj), floats=True)
        except RecursionError:  # a cycle, or nesting too deep: rfc8785 below says which
            fast = None
    if fast is not None:
        return fast  # without allow_floats, provably float-free: no walk needed
    if not allow_floats:
        _reject_floats(obj)
    try:
        return rfc8785.dumps(obj)
    except (rfc8785.CanonicalizationError, UnicodeError) as exc:
        raise CanonicalError(str(exc)) from exc
    except RecursionError as exc:
        raise CanonicalError("value nested too deeply") from exc


def _pairs_no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise CanonicalError(f"duplicate object key {key!r}")
            seen.add(key)
    return obj


def _reject_constant(name: str) -> Any:
    raise CanonicalError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise CanonicalError(f"number {text} overflows an IEEE 754 double")
    return value


def _has_lone_surrogate(obj: Any) -> bool:
    if isinstance(obj, str):
        try:
            obj.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(obj, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in obj.items())
    if isinstance(obj, list):
        return any(_has_lone_surrogate(v) for v in obj)
    return False


def parse_strict(data: bytes | str) -> Any:
    """Parse JSON strictly (see module docstring); raises ``CanonicalError`` on any violation.

    Integers are returned as parsed, even beyond 2**53 - 1 (parsing is not canonicalising;
    ``is_canonical`` and ``canonical_bytes`` reject them).
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CanonicalError(f"not UTF-8: {exc}") from exc
    elif isinstance(data, str):
        text = data
    else:
        raise TypeError("parse_strict takes bytes or str")
    try:
        obj = json.loads(
            text,
            object_pairs_hook=_pairs_no_duplicates,
            parse_constant=_reject_constant,
            parse_float=_finite_float,
        )
    except CanonicalError:
        raise
    except RecursionError as exc:
        raise CanonicalError("JSON nested too deeply") from exc
    except ValueError as exc:  # JSONDecodeError, int digit limit
        raise CanonicalError(f"not JSON: {exc}") from exc
    # Lone surrogates can only come from \uD800-\uDFFF escapes; skip the walk when there are none.
    if "\\u" in text and _has_lone_surrogate(obj):
        raise CanonicalError("string with a lone surrogate (not representable in UTF-8)")
    return obj


def _as_double(value: Any) -> Any:
    """Integers beyond +/-(2**53 - 1) as the doubles RFC 8785 says every JSON number is."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
            return value
        try:
            return float(value)
        except OverflowError as exc:
            raise CanonicalError("number overflows an IEEE 754 double") from exc
    if isinstance(value, dict):
        return {k: _as_double(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_double(v) for v in value]
    return value


_BIG_INT_TOKEN = re.compile(r"[0-9]{16}")


def is_canonical(data: bytes) -> bool:
    """True iff ``data`` is strict JSON and already exactly in RFC 8785 canonical form.

    As in RFC 8785, every number is judged as the IEEE 754 double it denotes: ``9007199254740992``
    (2**53, which is how JCS writes that double) is canonical, ``9007199254740993`` is not (the
    double it denotes is written ``9007199254740992``). ``canonical_bytes`` still refuses Python
    ints of that size, because writing one would silently change its value.
    """
    try:
        value = parse_strict(data)
        if _BIG_INT_TOKEN.search(bytes(data).decode("utf-8")):
            value = _as_double(value)
        return canonical_bytes(value) == bytes(data)
    except CanonicalError:
        return False
