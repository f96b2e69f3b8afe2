"""The safe expression evaluator: what it computes, what it refuses, and that it never escapes."""

from __future__ import annotations

from decimal import Decimal, localcontext
from fractions import Fraction

import pytest
from hypothesis import given, reject
from hypothesis import strategies as st

from okrsync.domain.expressions import MAX_DEPTH, MAX_LENGTH, Expression
from okrsync.errors import EvaluationError, ExpressionError

D = Decimal


def evaluate(text: str, **values: str) -> Decimal:
    return Expression.parse(text).evaluate({k: D(v) for k, v in values.items()})


@pytest.mark.parametrize(
    ("text", "values", "expected"),
    [
        ("won / (won + lost) * 100", {"won": "3", "lost": "1"}, "75"),
        ("1 + 2 * 3", {}, "7"),
        ("(1 + 2) * 3", {}, "9"),
        ("10 - 4 - 3", {}, "3"),  # left-associative
        ("2 * 3 - 4 / 2 + 1", {}, "5"),
        ("100 / 8 / 5", {}, "2.5"),
        ("-a + +b", {"a": "2", "b": "5"}, "3"),
        ("--a", {"a": "2"}, "2"),
        ("0.1 + 0.2", {}, "0.3"),  # exact, unlike floats
        ("1e3 + 1", {}, "1001"),
        ("1_000 * 2", {}, "2000"),
        ("7 % 3", {}, "1"),
        ("-7 % 3", {}, "2"),  # Python's sign convention, not Decimal's
        ("7 % -3", {}, "-2"),
        ("7.5 % 2", {}, "1.5"),
        ("6 % 3", {}, "0"),
        ("min(a, b, 3)", {"a": "4", "b": "5"}, "3"),
        ("max(a)", {"a": "4"}, "4"),
        ("max(a, -b)", {"a": "-4", "b": "5"}, "-4"),
        ("abs(a - b)", {"a": "2", "b": "5"}, "3"),
        ("min + max", {"min": "1", "max": "2"}, "3"),  # bare function names are metric names
        ("1 / 3", {}, "0.3333333333333333333333333333"),
        ("(a\n + b)", {"a": "1", "b": "2"}, "3"),
        ("  a  ", {"a": "8"}, "8"),
        ("a # the count", {"a": "8"}, "8"),
        ("café * 2", {"café": "4"}, "8"),
    ],
)
def test_evaluates_like_arithmetic(text: str, values: dict[str, str], expected: str) -> None:
    assert evaluate(text, **values) == D(expected)


def test_names_are_the_metrics_read_not_the_functions_called() -> None:
    expression = Expression.parse("max(won, lost) / (won + total) + min(x)")
    assert expression.names == frozenset({"won", "lost", "total", "x"})
    assert Expression.parse("3 * 4").names == frozenset()


def test_parse_once_evaluate_many() -> None:
    rate = Expression.parse("won / (won + lost)")
    assert rate.evaluate({"won": D(1), "lost": D(3)}) == D("0.25")
    assert rate.evaluate({"won": D(3), "lost": D(1)}) == D("0.75")
    assert rate.evaluate({"won": D(0), "lost": D(2), "unused": D(9)}) == D(0)


def test_expressions_compare_by_text() -> None:
    assert Expression.parse("a + b") == Expression.parse("a + b")
    assert Expression.parse("a + b") != Expression.parse("a+b")
    assert hash(Expression.parse("a")) == hash(Expression.parse("a"))


def test_negative_zero_is_reported_as_zero() -> None:
    result = evaluate("-a", a="0")
    assert result == 0
    assert not result.is_signed()


def test_evaluation_ignores_the_callers_decimal_context() -> None:
    with localcontext() as ctx:
        ctx.prec = 2
        result = evaluate("1 / 3")
    assert result == D("0.3333333333333333333333333333")


@pytest.mark.parametrize(
    ("text", "message", "offset"),
    [
        ("a.b", "attribute access is not allowed in expressions", 0),
        ("x + os.system(1)", "attribute access is not allowed in expressions", 4),
        ("().__class__", "attribute access is not allowed", 0),
        ("open(1)", "function 'open' is not allowed; allowed functions: abs, max, min", 0),
        ("1 + __import__(a)", "function '__import__' is not allowed", 4),
        ("a ** 2", "'**' is not allowed; use +, -, *, /, %", 2),
        ("a // 2", "'//' is not allowed", 2),
        ("(a) @ (b)", "'@' is not allowed", 4),
        ("a << 2", "'<<' is not allowed", 2),
        ("a | b", "'|' is not allowed", 2),
        ("a & b", "'&' is not allowed", 2),
        ("a ^ b", "'^' is not allowed", 2),
        ("~a", "'~' is not allowed", 0),
        ("not a", "'not' is not allowed", 0),
        ("'text'", "strings are not allowed", 0),
        ("f'{a}'", "strings are not allowed", 0),
        ("b'x'", "strings are not allowed", 0),
        ("True + 1", "booleans (True, False) are not allowed", 0),
        ("None", "None is not allowed", 0),
        ("1j", "complex numbers are not allowed", 0),
        ("...", "not allowed", 0),
        ("a < b", "comparisons are not allowed", 0),
        ("a == b", "comparisons are not allowed", 0),
        ("a and b", "'and' and 'or' are not allowed", 0),
        ("a if b else c", "conditional expressions", 0),
        ("lambda: 1", "lambda is not allowed", 0),
        ("(a := 1)", "assignment (':=') is not allowed", 1),
        ("a, b", "tuples", 0),
        ("[a]", "lists are not allowed", 0),
        ("{a: 1}", "dictionaries are not allowed", 0),
        ("{a}", "sets are not allowed", 0),
        ("a[0]", "indexing and slicing are not allowed", 0),
        ("[x for x in a]", "comprehensions are not allowed", 0),
        ("max(x for x in a)", "generator expressions are not allowed", 3),
        ("max(*a)", "'*' unpacking is not allowed", 4),
        ("max(a, key=b)", "keyword arguments are not allowed (in max())", 7),
        ("max(**a)", "keyword arguments are not allowed", 4),
        ("min()", "min() needs at least one argument", 0),
        ("abs()", "abs() takes exactly one argument (0 given)", 0),
        ("abs(a, b)", "abs() takes exactly one argument (2 given)", 0),
        ("(min)(a)", "", None),  # just a call to min: allowed (checked separately below)
        ("a(b)", "function 'a' is not allowed", 0),
        ("max(a)(b)", "only the functions abs, max, min can be called", 0),
        ("1e999", "number is too large", 0),
        ("  a ** 2", "'**' is not allowed", 4),
        ("é + a.b", "attribute access", 4),  # characters, not UTF-8 bytes
        ("(a +\n b.c)", "attribute access", 6),
    ],
)
def test_refuses_anything_but_arithmetic(text: str, message: str, offset: int | None) -> None:
    if not message:
        assert Expression.parse(text).evaluate({"a": D(-2)}) == D(-2)
        return
    with pytest.raises(ExpressionError) as caught:
        Expression.parse(text)
    assert message in caught.value.message
    assert caught.value.offset == offset


@pytest.mark.parametrize(
    ("text", "reason", "offset"),
    [
        ("(a + b", "'(' was never closed", 0),
        ("  (a", "'(' was never closed", 2),
        ("a b", "invalid syntax", 2),
        ("a $ b", "invalid syntax", 2),
        ("(1 +\n 2 +)", "invalid syntax", 9),
        ("a = 1", "invalid syntax", None),
        ("a +", "invalid syntax", None),  # Python cannot point past the end
    ],
)
def test_syntax_errors_say_where(text: str, reason: str, offset: int | None) -> None:
    with pytest.raises(ExpressionError) as caught:
        Expression.parse(text)
    assert caught.value.message.startswith("invalid expression: ")
    assert reason in caught.value.message
    if offset is not None:
        assert caught.value.offset == offset


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_refuses_empty_text(text: str) -> None:
    with pytest.raises(ExpressionError, match="empty"):
        Expression.parse(text)


def test_refuses_text_over_the_length_limit() -> None:
    at_limit = "1" + " + 1" * ((MAX_LENGTH - 1) // 4)
    assert len(at_limit) <= MAX_LENGTH
    Expression.parse(at_limit)
    with pytest.raises(ExpressionError, match="limit is 1000"):
        Expression.parse("a" * (MAX_LENGTH + 1))


def test_refuses_nesting_beyond_the_limit() -> None:
    assert evaluate("-" * (MAX_DEPTH - 1) + "a", a="1") == D(-1)
    with pytest.raises(ExpressionError, match="nested too deeply") as caught:
        Expression.parse("-" * MAX_DEPTH + "a")
    assert caught.value.offset == MAX_DEPTH  # the first node beyond the limit: 'a'
    with pytest.raises(ExpressionError, match="nested too deeply"):
        Expression.parse("abs(" * 60 + "a" + ")" * 60)
    with pytest.raises(ExpressionError, match=r"nested too deeply|nested parentheses"):
        Expression.parse("(" * 300 + "a" + ")" * 300)


def test_a_long_flat_sum_is_not_deep() -> None:
    terms = [f"m{i}" for i in range(150)]
    expression = Expression.parse(" + ".join(terms))
    assert expression.evaluate({t: D(1) for t in terms}) == 150


@pytest.mark.parametrize("text", ["a / b", "a % b", "1 / (b - b)", "a / min(b, 0)"])
def test_division_by_zero_names_the_expression(text: str) -> None:
    with pytest.raises(EvaluationError) as caught:
        Expression.parse(text).evaluate({"a": D(1), "b": D(0)})
    assert str(caught.value) == f"division by zero in '{text}'"


def test_missing_metrics_are_all_named() -> None:
    with pytest.raises(EvaluationError) as caught:
        Expression.parse("won + lost + other").evaluate({"other": D(1)})
    assert str(caught.value) == "no value for 'lost', 'won' in 'won + lost + other'"


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_metric_values_are_refused(value: str) -> None:
    with pytest.raises(EvaluationError, match="'a' is"):
        Expression.parse("a + 1").evaluate({"a": D(value)})


@pytest.mark.parametrize(
    ("text", "a"), [("a * a", "1E+999999"), ("a % 3", "1E+40"), ("a * 10", "9.9E+999999")]
)
def test_results_out_of_range_are_evaluation_errors(text: str, a: str) -> None:
    with pytest.raises(EvaluationError, match="out of range"):
        Expression.parse(text).evaluate({"a": D(a)})


# --- properties ------------------------------------------------------------------------------

TOKENS = [
    "a", "b", "min", "abs", "max", "open", "1", "0", "0.5", "1e999", "_", "x.y", "'s'", "True",
    "+", "-", "*", "/", "%", "**", "//", "(", ")", "[", "]", "{", "}", ",", ":", ":=", "=", "<",
    "@", "~", "not", "lambda", "if", "else", "for", "in", " ", "\n", "\t", "\\", "#", "\x00",
    "é", "\ud800", '"', "f'", "...", "yield", "await",
]  # fmt: skip


def parse_or_refusal(text: str) -> Expression | ExpressionError:
    """``Expression.parse``, with an ``ExpressionError`` returned rather than raised; anything
    else it raises fails the calling test."""
    try:
        return Expression.parse(text)
    except ExpressionError as exc:
        return exc


@given(st.text(max_size=300) | st.lists(st.sampled_from(TOKENS), max_size=40).map("".join))
def test_parse_returns_or_raises_expression_error_only(text: str) -> None:
    outcome = parse_or_refusal(text)
    if isinstance(outcome, ExpressionError):
        assert outcome.message
        assert outcome.offset is None or 0 <= outcome.offset <= len(text)
    else:
        assert outcome.text == text
        assert all(name.isidentifier() for name in outcome.names)


NAMES = ["a", "b", "won", "lost", "min"]
literals = st.integers(min_value=0, max_value=10**6).map(str) | st.decimals(
    min_value=0, max_value=10**6, places=3
).map(str)


def _compose(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(children, st.sampled_from("+-*/%"), children).map(" ".join),
        children.map(lambda c: f"({c})"),
        children.map(lambda c: f"-{c}"),
        children.map(lambda c: f"abs({c})"),
        st.tuples(st.sampled_from(["min", "max"]), st.lists(children, min_size=1, max_size=3)).map(
            lambda call: f"{call[0]}({', '.join(call[1])})"
        ),
    )


expressions = st.recursive(st.sampled_from(NAMES) | literals, _compose, max_leaves=25)
any_values = st.fixed_dictionaries(
    {name: st.decimals(allow_nan=False, allow_infinity=False) for name in NAMES}
)


@given(text=expressions, values=any_values)
def test_valid_expressions_evaluate_or_raise_evaluation_error_only(
    text: str, values: dict[str, Decimal]
) -> None:
    expression = parse_or_refusal(text)
    if isinstance(expression, ExpressionError):  # generated too deep or too long: a fair refusal
        assert "nested too deeply" in expression.message or "limit is" in expression.message
        reject()
    assert expression.names <= set(NAMES)
    try:
        result = expression.evaluate(values)
    except EvaluationError:
        return
    assert isinstance(result, Decimal)
    assert result.is_finite()


@st.composite
def exact_expressions(draw: st.DrawFn, depth: int = 0) -> tuple[str, Fraction]:
    """An integer expression (no division) together with its exact value, as an oracle."""
    if depth >= 4 or draw(st.booleans()):
        if draw(st.booleans()):
            name = draw(st.sampled_from(sorted(ORACLE_VALUES)))
            return name, Fraction(ORACLE_VALUES[name])
        n = draw(st.integers(min_value=0, max_value=999))
        return str(n), Fraction(n)
    kind = draw(st.sampled_from(["+", "-", "*", "neg", "abs", "min", "max"]))
    left_text, left = draw(exact_expressions(depth + 1))
    if kind == "neg":
        return f"-({left_text})", -left
    if kind == "abs":
        return f"abs({left_text})", abs(left)
    right_text, right = draw(exact_expressions(depth + 1))
    if kind == "min":
        return f"min({left_text}, {right_text})", min(left, right)
    if kind == "max":
        return f"max({left_text}, {right_text})", max(left, right)
    value = {"+": left + right, "-": left - right, "*": left * right}[kind]
    return f"({left_text}) {kind} ({right_text})", value


ORACLE_VALUES = {"a": -7, "b": 12, "c": 0}


@given(exact_expressions())
def test_integer_arithmetic_matches_an_exact_oracle(case: tuple[str, Fraction]) -> None:
    text, expected = case
    values = {name: D(v) for name, v in ORACLE_VALUES.items()}
    assert Fraction(Expression.parse(text).evaluate(values)) == expected


@given(
    a=st.integers(min_value=-(10**6), max_value=10**6),
    b=st.integers(min_value=-(10**6), max_value=10**6).filter(bool),
)
def test_modulo_and_division_agree_with_python(a: int, b: int) -> None:
    values = {"a": D(a), "b": D(b)}
    assert Expression.parse("a % b").evaluate(values) == a % b
    quotient = Expression.parse("a / b").evaluate(values)
    assert abs(Fraction(quotient) - Fraction(a, b)) <= abs(Fraction(a, b)) * Fraction(1, 10**27)
