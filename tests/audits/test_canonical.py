"""RFC 8785 canonical JSON: published examples, strict parsing, and the fast path's exactness.

Why: a leaf's hash is over its bytes, so canonicalisation is part of the log's security. The C
fast path in ``canonical_bytes`` must produce exactly what ``rfc8785`` produces, for every input;
a differential test over many random values guards that.
"""
from __future__ import annotations

import json
import random
import struct

import pytest
import rfc8785

from audits.core.canonical import MAX_SAFE_INT, CanonicalError, canonical_bytes, is_canonical, parse_strict

# RFC 8785 Appendix B: IEEE 754 bit patterns and their canonical (ECMAScript) number text.
RFC8785_NUMBERS = [
    (0x0000000000000000, "0"),
    (0x8000000000000000, "0"),
    (0x0000000000000001, "5e-324"),
    (0x8000000000000001, "-5e-324"),
    (0x7FEFFFFFFFFFFFFF, "1.7976931348623157e+308"),
    (0xFFEFFFFFFFFFFFFF, "-1.7976931348623157e+308"),
    (0x4340000000000000, "9007199254740992"),
    (0xC340000000000000, "-9007199254740992"),
    (0x4430000000000000, "295147905179352830000"),
    (0x44B52D02C7E14AF5, "9.999999999999997e+22"),
    (0x44B52D02C7E14AF6, "1e+23"),
    (0x44B52D02C7E14AF7, "1.0000000000000001e+23"),
    (0x444B1AE4D6E2EF4E, "999999999999999700000"),
    (0x444B1AE4D6E2EF4F, "999999999999999900000"),
    (0x444B1AE4D6E2EF50, "1e+21"),
    (0x3EB0C6F7A0B5ED8C, "9.999999999999997e-7"),
    (0x3EB0C6F7A0B5ED8D, "0.000001"),
    (0x41B3DE4355555553, "333333333.3333332"),
    (0x41B3DE4355555554, "333333333.33333325"),
    (0x41B3DE4355555555, "333333333.3333333"),
    (0x41B3DE4355555556, "333333333.3333334"),
    (0x41B3DE4355555557, "333333333.33333343"),
    (0xBECBF647612F3696, "-0.0000033333333333333333"),
    (0x43143FF3C1CB0959, "1424953923781206.2"),
]


def _double(bits: int) -> float:
    return struct.unpack(">d", bits.to_bytes(8, "big"))[0]


@pytest.mark.parametrize("bits,expected", RFC8785_NUMBERS)
def test_rfc8785_number_serialization(bits: int, expected: str) -> None:
    assert canonical_bytes(_double(bits)) == expected.encode()
    assert canonical_bytes([_double(bits)]) == f"[{expected}]".encode()


@pytest.mark.parametrize("bits", [0x7FFFFFFFFFFFFFFF, 0x7FF0000000000000, 0xFFF0000000000000])
def test_nan_and_infinities_cannot_be_encoded(bits: int) -> None:
    with pytest.raises(CanonicalError):
        canonical_bytes({"x": _double(bits)})


def test_rfc8785_sorting_example_uses_utf16_code_units() -> None:
    # RFC 8785 section 3.2.3: U+1F600 (surrogates D83D DE00) sorts before U+FB33 in UTF-16
    # order even though its code point is larger.
    obj = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    out = canonical_bytes(obj).decode("utf-8")
    keys = list(json.loads(out, object_pairs_hook=lambda pairs: [k for k, _ in pairs]))
    assert keys == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]
    assert is_canonical(out.encode("utf-8"))
    assert sorted(obj) != keys, "the example must distinguish code point from UTF-16 order"


def test_rfc8785_main_example() -> None:
    # RFC 8785 section 3.2.2 input and output.
    source = (
        b'{\n  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],\n'
        b'  "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",\n'
        b'  "literals": [null, true, false]\n}'
    )
    expected = (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    ).encode("utf-8")
    assert canonical_bytes(parse_strict(source)) == expected
    assert is_canonical(expected)
    assert not is_canonical(source)


@pytest.mark.parametrize(
    "value,expected",
    [
        (1.0, b"1"),
        (-0.0, b"0"),
        (0, b"0"),
        (1e21, b"1e+21"),
        (1e20, b"100000000000000000000"),
        (1e-7, b"1e-7"),
        (1e-6, b"0.000001"),
        (0.1, b"0.1"),
        (123.456, b"123.456"),
        (MAX_SAFE_INT, b"9007199254740991"),
        (-MAX_SAFE_INT, b"-9007199254740991"),
        (True, b"true"),
        (None, b"null"),
        ("", b'""'),
        ("caf\u00e9", "\"caf\u00e9\"".encode()),
        ("\u2028\u2029", "\"\u2028\u2029\"".encode()),
        ("\x7f", b'"\x7f"'),
        ("tab\there\nnl \x00 \x1f \x08 \x0c \r", b'"tab\\there\\nnl \\u0000 \\u001f \\b \\f \\r"'),
        ('quote " backslash \\ slash /', b'"quote \\" backslash \\\\ slash /"'),
        ("\U0001f600", "\"\U0001f600\"".encode()),
        ({"b": [], "a": {}}, b'{"a":{},"b":[]}'),
        ([1, "2", [3.5]], b'[1,"2",[3.5]]'),
        ((1, 2), b"[1,2]"),
    ],
)
def test_canonical_values(value: object, expected: bytes) -> None:
    assert canonical_bytes(value) == expected
    assert rfc8785.dumps(value) == expected


@pytest.mark.parametrize("value", [2**53, -(2**53), 10**30, {"n": 2**63}, [2**53]])
def test_integers_beyond_double_precision_are_rejected_at_encode_time(value: object) -> None:
    with pytest.raises(CanonicalError):
        canonical_bytes(value)


@pytest.mark.parametrize(
    "value",
    [
        {1: "int key"},
        {None: "null key"},
        {"a": object()},
        {"a": b"bytes"},
        {"a": {1, 2}},
        "lone \ud800 surrogate",
        {"\udc00": 1},
        float("nan"),
    ],
)
def test_unencodable_values_raise(value: object) -> None:
    with pytest.raises(CanonicalError):
        canonical_bytes(value)


def test_allow_floats_false() -> None:
    assert canonical_bytes({"a": [1, "0.5"]}, allow_floats=False) == b'{"a":[1,"0.5"]}'
    with pytest.raises(CanonicalError, match=r"\$\.a\[1\]"):
        canonical_bytes({"a": [1, 0.5]}, allow_floats=False)
    with pytest.raises(CanonicalError):
        canonical_bytes({"a": {"b": 1.0}}, allow_floats=False)


def test_circular_structures_raise() -> None:
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(CanonicalError):
        canonical_bytes(loop)


# --------------------------------------------------------------------------- strict parsing


@pytest.mark.parametrize(
    "data,reason",
    [
        (b'{"a":1,"a":2}', "duplicate key"),
        (b'{"x":{"a":1,"b":2,"a":3}}', "nested duplicate key"),
        (b'[{"k":1},{"k":1,"k":1}]', "duplicate key in array element"),
        (b'{"a":NaN}', "NaN"),
        (b"[Infinity]", "Infinity"),
        (b"-Infinity", "-Infinity"),
        (b"1e400", "overflows to infinity"),
        (b"[-1e400]", "overflows to -infinity"),
        (b'"\xff"', "invalid UTF-8"),
        (b'"\xc0\xaf"', "overlong UTF-8"),
        (b'"\xed\xa0\x80"', "UTF-8-encoded surrogate"),
        ('{"a":1}'.encode("utf-16"), "UTF-16"),
        (b"\xef\xbb\xbf{}", "byte order mark"),
        (b'"\\ud800"', "lone high surrogate escape"),
        (b'{"\\udc00":1}', "lone low surrogate in a key"),
        (b'{"a":1} x', "trailing garbage"),
        (b"", "empty"),
        (b"{'a':1}", "single quotes"),
        (b'{"a":1,}', "trailing comma"),
        (b"[01]", "leading zero"),
    ],
)
def test_parse_strict_rejects(data: bytes, reason: str) -> None:
    with pytest.raises(CanonicalError):
        parse_strict(data)
    assert not is_canonical(data), reason


def test_parse_strict_accepts_valid_json() -> None:
    assert parse_strict(b'{"a":[1,2.5,"x",null,true],"b":{}}') == {"a": [1, 2.5, "x", None, True], "b": {}}
    assert parse_strict('"\\ud83d\\ude00"') == "\U0001f600"  # a valid surrogate *pair* escape
    assert parse_strict(b"12345678901234567890") == 12345678901234567890  # parse is not canonicalise
    with pytest.raises(TypeError):
        parse_strict(123)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "data",
    [
        b'{"a":1,"b":2}',
        b'{"a":[1,{"c":null,"d":false}],"b":"x"}',
        b"[]",
        b"{}",
        b'"\\u001f"',
        '{"\u00e9":"\U0001f600"}'.encode(),
        b"-1",
        b"9007199254740991",
        b"9007199254740992",  # 2**53 is a double; JCS writes it this way
        b"[673789926489793000]",  # an integral double beyond 2**53
        b"1.5",
        b"1e+21",
    ],
)
def test_is_canonical_accepts(data: bytes) -> None:
    assert is_canonical(data)


@pytest.mark.parametrize(
    "data,reason",
    [
        (b'{"b":1,"a":2}', "key order"),
        (b'{"a": 1}', "space after colon"),
        (b'{"a":1} ', "trailing space"),
        (b'{"a":1}\n', "trailing newline"),
        (b' {"a":1}', "leading space"),
        (b'"\\/"', "escaped slash"),
        (b'"\\u0041"', "unnecessary unicode escape"),
        (b'"\\u001F"', "uppercase hex escape"),
        (b'"\\u000a"', "long form of \\n"),
        (b'"\\u00e9"', "escaped non-ASCII"),
        (b"1.0", "trailing .0"),
        (b"-0", "negative zero"),
        (b"1E2", "exponent"),
        (b"1e21", "exponent without sign"),
        (b"0.0000001", "should be 1e-7"),
        (b"9007199254740993", "not a double: it denotes 9007199254740992"),
        (b"100000000000000000000000", "should be 1e+23"),
        (b"1" + b"0" * 400, "overflows a double"),
        (b"[1,2 ]", "inner whitespace"),
    ],
)
def test_is_canonical_rejects(data: bytes, reason: str) -> None:
    assert not is_canonical(data), reason


# --------------------------------------------------------------------------- fast path == rfc8785

_ALPHABET = [
    "a", "b", "Z", "0", " ", '"', "\\", "/", "\n", "\t", "\x00", "\x1f", "\x7f", "\u00e9", "\u0080",
    "\u2028", "\u20ac", "\ufb33", "\uffff", "\ue000", "\U0001f600", "\U00010000", "\U0010ffff",
]


def _random_str(rng: random.Random) -> str:
    return "".join(rng.choice(_ALPHABET) for _ in range(rng.randrange(0, 6)))


def _random_value(rng: random.Random, depth: int = 0, floats: bool = True) -> object:
    kind = rng.randrange(9 if depth < 4 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, 1, -1, 42, MAX_SAFE_INT, -MAX_SAFE_INT, rng.randrange(-(10**12), 10**12)])
    if kind == 3 and floats:
        return rng.choice([0.5, -0.0, 1e21, 1e-7, 123.456, _double(rng.getrandbits(63))])
    if kind in (3, 4, 5):
        return _random_str(rng)
    if kind in (6, 7):
        return {_random_str(rng): _random_value(rng, depth + 1, floats) for _ in range(rng.randrange(0, 5))}
    return [_random_value(rng, depth + 1, floats) for _ in range(rng.randrange(0, 4))]


def test_fast_path_agrees_with_rfc8785_on_random_values() -> None:
    rng = random.Random(8785)
    for i in range(4000):
        value = _random_value(rng, floats=i % 2 == 0)
        try:
            expected = rfc8785.dumps(value)
        except (rfc8785.CanonicalizationError, UnicodeError):
            with pytest.raises(CanonicalError):
                canonical_bytes(value)
            continue
        got = canonical_bytes(value)
        assert got == expected, f"value {value!r}"
        assert is_canonical(got), f"round trip {got!r}"


def test_random_doubles_format_like_rfc8785() -> None:
    rng = random.Random(754)
    for _ in range(3000):
        value = _double(rng.getrandbits(64))
        if value != value or value in (float("inf"), float("-inf")):
            continue
        assert canonical_bytes(value) == rfc8785.dumps(value)


def test_plain_floats_take_the_fast_path_and_agree_with_rfc8785() -> None:
    """A float whose repr JCS keeps as it is (a fraction, no exponent) is encoded at C speed.

    Whole values, exponents and negative zero, which JCS rewrites, still go through ``rfc8785``.
    """
    from audits.core.canonical import _fast_canonical

    rng = random.Random(91)
    values = [0.91, -0.5, 123.456, 0.0001, 1e15 + 0.5, 0.1 + 0.2]
    values += [rng.uniform(-1e6, 1e6) for _ in range(2000)] + [rng.uniform(0, 1) for _ in range(2000)]
    for value in values:
        doc = {"accuracy": value, "gates": [{"p": value, "n": 3}]}
        assert _fast_canonical(doc, floats=True) is not None, value
        assert canonical_bytes(doc) == rfc8785.dumps(doc), value
    for value in (2.0, -0.0, 1e-7, 1e16, 1.5e-05, 1e21, 123456789012345680.0):
        assert _fast_canonical({"v": value}, floats=True) is None, value  # JCS writes these differently
        assert canonical_bytes({"v": value}) == rfc8785.dumps({"v": value}), value
    # Whole floats are swapped for the integers JCS writes for them, then take the fast path.
    from audits.core.canonical import _whole_floats_as_ints

    report = {"metrics": {"precision": 1.0, "recall": 0.9}, "difference": 0.0, "neg": -0.0, "big": 2.0**53,
              "rows": [1.0, 3, "1.0", True, None], "huge": 1e300}
    converted = _whole_floats_as_ints(report)
    assert converted["metrics"]["precision"] == 1 and type(converted["metrics"]["precision"]) is int
    assert type(converted["big"]) is float and type(converted["huge"]) is float  # beyond 2**53 - 1: left alone
    assert converted["rows"] == [1, 3, "1.0", True, None] and type(converted["rows"][3]) is bool
    for doc in (report, {"a": [0.0, -2.0, 1e15]}, {"p": 1.0, "q": 3e-07}):
        assert canonical_bytes(doc) == rfc8785.dumps(doc), doc
    rng = random.Random(1)
    for _ in range(500):
        doc = {"w": float(rng.randrange(-10**9, 10**9)), "f": rng.random(), "l": [float(rng.randrange(100))]}
        assert _fast_canonical(_whole_floats_as_ints(doc), floats=True) is not None
        assert canonical_bytes(doc) == rfc8785.dumps(doc), doc
    assert _fast_canonical({"v": 0.5}) is None  # without floats allowed, a float never passes the fast path
    with pytest.raises(CanonicalError):
        canonical_bytes({"v": 0.5}, allow_floats=False)
