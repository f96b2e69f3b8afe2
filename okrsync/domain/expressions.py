"""Safe arithmetic over metrics, for key results such as ``value: won / (won + lost) * 100``.

The text comes from a config file, so it is treated as untrusted: it is parsed with ``ast`` and
every node is checked against a whitelist (numbers, metric names, ``+ - * / %``, unary ``+ -``,
and calls to ``abs``, ``max`` and ``min``). The checked tree is compiled once into a tree of
small closures; evaluating it never calls ``eval`` and can only do Decimal arithmetic, so a
config cannot reach attributes, builtins or the file system.

Numbers are exact ``Decimal``: the literal ``0.1`` is ``Decimal("0.1")``, not the float nearest
to it, and results are computed with 28 significant digits in the engine's own context.
"""

from __future__ import annotations

import ast
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation, Overflow, localcontext
from operator import add, mul, neg, pos, sub

from okrsync.domain.progress import ENGINE_CONTEXT
from okrsync.errors import EvaluationError, ExpressionError

MAX_LENGTH = 1000
"""Longest expression accepted, in characters: bounds the work the parser may be asked to do."""

MAX_DEPTH = 50
"""Deepest nesting accepted (see ``Expression.parse``): bounds recursion when evaluating."""

FUNCTIONS = ("abs", "max", "min")

_OPERATORS_HINT = "use +, -, *, /, %"
_TOO_DEEP = f"expression is nested too deeply (the limit is {MAX_DEPTH} levels)"
_BANNED_OPERATORS: dict[type[ast.AST], str] = {
    ast.Pow: "**",
    ast.FloorDiv: "//",
    ast.MatMult: "@",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitOr: "|",
    ast.BitXor: "^",
    ast.BitAnd: "&",
    ast.Not: "not",
    ast.Invert: "~",
}
_BANNED_NODES: dict[type[ast.AST], str] = {
    ast.Attribute: "attribute access is not allowed in expressions",
    ast.Subscript: "indexing and slicing are not allowed in expressions",
    ast.Compare: "comparisons are not allowed in expressions",
    ast.BoolOp: "'and' and 'or' are not allowed in expressions",
    ast.IfExp: "conditional expressions ('x if c else y') are not allowed in expressions",
    ast.Lambda: "lambda is not allowed in expressions",
    ast.NamedExpr: "assignment (':=') is not allowed in expressions",
    ast.Tuple: "tuples (commas outside a function call) are not allowed in expressions",
    ast.List: "lists are not allowed in expressions",
    ast.Dict: "dictionaries are not allowed in expressions",
    ast.Set: "sets are not allowed in expressions",
    ast.ListComp: "comprehensions are not allowed in expressions",
    ast.SetComp: "comprehensions are not allowed in expressions",
    ast.DictComp: "comprehensions are not allowed in expressions",
    ast.GeneratorExp: "generator expressions are not allowed in expressions",
    ast.JoinedStr: "strings are not allowed in expressions",
    ast.Starred: "'*' unpacking is not allowed in expressions",
    ast.Await: "await is not allowed in expressions",
    ast.Yield: "yield is not allowed in expressions",
    ast.YieldFrom: "yield is not allowed in expressions",
}

Values = Mapping[str, Decimal]
_Eval = Callable[[Values], Decimal]
_BinaryOp = Callable[[Decimal, Decimal], Decimal]
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class Expression:
    """A checked expression: its text, the metric names it reads, and its compiled form.

    Build one with ``Expression.parse``; equality and hashing consider ``text`` and ``names``.
    """

    text: str
    names: frozenset[str]
    _evaluate: _Eval = field(repr=False, compare=False)

    @classmethod
    def parse(cls, text: str) -> Expression:
        """Check ``text`` and compile it, or raise ``ExpressionError`` saying what to change.

        The error's ``offset`` is the 0-based character position in ``text`` of the offending
        construct, or ``None`` when the parser could not tell.

        Nesting is the depth of the syntax tree, except that a run of binary operators read
        left to right (``a + b * c - d + …``) is one level however many terms it has, since it
        is evaluated in a loop rather than by recursion: ``-(-(-a))`` is four levels deep,
        ``max(a, b + c)`` three, a sum of 200 metrics two.
        """
        if not text.strip():
            raise ExpressionError("expression is empty")
        if len(text) > MAX_LENGTH:
            raise ExpressionError(
                f"expression is {len(text)} characters long; the limit is {MAX_LENGTH}"
            )
        body = text.lstrip()
        lead = len(text) - len(body)
        tree = _parse_python(body, lead)
        compiler = _Compiler(text=text, source=body, lead=lead)
        evaluate = compiler.compile(tree.body, depth=1)
        return cls(text=text, names=frozenset(compiler.names), _evaluate=evaluate)

    def evaluate(self, values: Values) -> Decimal:
        """The expression's value given each metric's value, or ``EvaluationError``.

        Fails when a metric it reads has no value (or a non-finite one), on division or modulo
        by zero, and when a result falls outside the range of the decimal context.
        """
        missing = sorted(self.names - values.keys())
        if missing:
            listed = ", ".join(repr(name) for name in missing)
            raise EvaluationError(f"no value for {listed} in '{self.text}'")
        for name in sorted(self.names):
            if not values[name].is_finite():
                raise EvaluationError(f"{name!r} is {values[name]}, not a number, in '{self.text}'")
        try:
            with localcontext(ENGINE_CONTEXT):
                result = self._evaluate(values)
        except (InvalidOperation, Overflow) as exc:
            raise EvaluationError(f"cannot compute '{self.text}': result out of range") from exc
        # ``-a`` with ``a`` = 0 gives Decimal("-0"): equal to 0, but confusing once displayed.
        return result.copy_abs() if result.is_zero() else result


def _parse_python(body: str, lead: int) -> ast.Expression:
    """Python's own parser on ``body`` (``text`` without leading whitespace, which Python
    would reject as an indent); ``lead`` shifts error offsets back onto the original text."""
    try:
        with warnings.catch_warnings():
            # Some inputs (e.g. invalid escapes in strings) warn while parsing; they are rejected
            # anyway, and a config check should not print Python warnings. (catch_warnings is
            # process-wide; parsing happens while loading config, not on worker threads.)
            warnings.simplefilter("ignore")
            return ast.parse(body, mode="eval")
    except SyntaxError as exc:
        offset = None
        if exc.lineno is not None and exc.offset is not None and exc.offset >= 1:
            starts = _line_starts(body)
            if exc.lineno <= len(starts):
                offset = min(lead + starts[exc.lineno - 1] + exc.offset - 1, lead + len(body))
        raise ExpressionError(f"invalid expression: {exc.msg}", offset=offset) from None
    except ValueError as exc:  # e.g. null bytes or lone surrogates, depending on the Python
        raise ExpressionError(f"invalid expression: {exc}") from None
    except (RecursionError, MemoryError):
        raise ExpressionError(_TOO_DEEP) from None


def _line_starts(source: str) -> list[int]:
    """Character index where each line of ``source`` begins, splitting lines as Python does."""
    return [0, *(match.end() for match in _LINE_BREAK.finditer(source))]


@dataclass
class _Compiler:
    """Checks an ``ast`` tree node by node and turns it into nested closures."""

    text: str
    source: str
    lead: int
    names: set[str] = field(default_factory=set)

    def compile(self, node: ast.expr, depth: int) -> _Eval:
        if depth > MAX_DEPTH:
            raise self.error(node, _TOO_DEEP)
        match node:
            case ast.Constant():
                return self.constant(node)
            case ast.Name(id=name):
                self.names.add(name)
                return lambda values: values[name]
            case ast.UnaryOp(op=ast.USub() | ast.UAdd() as op, operand=operand):
                sign = neg if isinstance(op, ast.USub) else pos
                inner = self.compile(operand, depth + 1)
                return lambda values: sign(inner(values))
            case ast.UnaryOp(op=op):
                raise self.error(node, f"{self.symbol(op)!r} is not allowed; {_OPERATORS_HINT}")
            case ast.BinOp():
                return self.chain(node, depth)
            case ast.Call():
                return self.call(node, depth)
        message = _BANNED_NODES.get(type(node), f"{type(node).__name__} is not allowed")
        raise self.error(node, message)

    def constant(self, node: ast.Constant) -> _Eval:
        value = node.value
        if isinstance(value, bool):
            raise self.error(node, "booleans (True, False) are not allowed in expressions")
        if value is None:
            raise self.error(node, "None is not allowed in expressions")
        if isinstance(value, str | bytes):
            raise self.error(node, "strings are not allowed in expressions")
        if isinstance(value, complex):
            raise self.error(node, "complex numbers are not allowed in expressions")
        if not isinstance(value, int | float):
            raise self.error(node, f"{value!r} is not allowed in expressions")
        # str() of a float is its shortest round-tripping repr, so 0.1 becomes exactly 0.1.
        number = Decimal(value) if isinstance(value, int) else Decimal(str(value))
        if not number.is_finite():
            raise self.error(node, "number is too large")
        return lambda values: number

    def chain(self, node: ast.BinOp, depth: int) -> _Eval:
        """A run of binary operators down the left side (``a + b * c - d`` is ``((a + (b * c))
        - d)``) is flattened into one loop, so long sums cost no nesting."""
        links: list[ast.BinOp] = []
        head: ast.expr = node
        while isinstance(head, ast.BinOp):
            links.append(head)
            head = head.left
        links.reverse()
        first = self.compile(head, depth + 1)
        steps = [(self.operator(link), self.compile(link.right, depth + 1)) for link in links]

        def evaluate(values: Values) -> Decimal:
            result = first(values)
            for apply, operand in steps:
                result = apply(result, operand(values))
            return result

        return evaluate

    def operator(self, node: ast.BinOp) -> _BinaryOp:
        match node.op:
            case ast.Add():
                return add
            case ast.Sub():
                return sub
            case ast.Mult():
                return mul
            case ast.Div():
                return self.divide
            case ast.Mod():
                return self.modulo
        symbol = self.symbol(node.op)
        raise ExpressionError(
            f"{symbol!r} is not allowed; {_OPERATORS_HINT}",
            offset=self.operator_offset(node, symbol),
        )

    def call(self, node: ast.Call, depth: int) -> _Eval:
        if isinstance(node.func, ast.Attribute):
            raise self.error(node.func, _BANNED_NODES[ast.Attribute])
        if not isinstance(node.func, ast.Name):
            raise self.error(node, f"only the functions {', '.join(FUNCTIONS)} can be called")
        name = node.func.id
        if name not in FUNCTIONS:
            raise self.error(
                node,
                f"function {name!r} is not allowed; allowed functions: {', '.join(FUNCTIONS)}",
            )
        if node.keywords:
            raise self.error(node.keywords[0], f"keyword arguments are not allowed (in {name}())")
        if name == "abs" and len(node.args) != 1:
            raise self.error(node, f"abs() takes exactly one argument ({len(node.args)} given)")
        if not node.args:
            raise self.error(node, f"{name}() needs at least one argument")
        args = [self.compile(arg, depth + 1) for arg in node.args]
        if name == "abs":
            (only,) = args
            return lambda values: abs(only(values))
        pick = min if name == "min" else max
        return lambda values: pick(arg(values) for arg in args)

    def divide(self, left: Decimal, right: Decimal) -> Decimal:
        if right.is_zero():
            raise EvaluationError(f"division by zero in '{self.text}'")
        return left / right

    def modulo(self, left: Decimal, right: Decimal) -> Decimal:
        """Python's ``%`` for numbers: the result takes the sign of the divisor, so that
        ``-7 % 3`` is 2 as anyone trying the expression in Python would expect (Decimal's own
        ``%`` keeps the sign of the dividend and would give -1)."""
        if right.is_zero():
            raise EvaluationError(f"division by zero in '{self.text}'")
        remainder = left % right
        if not remainder.is_zero() and remainder.is_signed() != right.is_signed():
            remainder += right
        return remainder

    @staticmethod
    def symbol(op: ast.AST) -> str:
        return _BANNED_OPERATORS.get(type(op), type(op).__name__)

    def error(self, node: ast.AST, message: str) -> ExpressionError:
        return ExpressionError(message, offset=self.offset(node))

    def offset(self, node: ast.AST) -> int | None:
        """0-based character offset where ``node`` starts in the original text."""
        lineno: int | None = getattr(node, "lineno", None)
        col: int | None = getattr(node, "col_offset", None)
        return None if lineno is None or col is None else self.position(lineno, col)

    def operator_offset(self, node: ast.BinOp, symbol: str) -> int | None:
        """Where the operator itself is: ``ast`` only knows where its operands are, so look for
        the symbol after the end of the left operand (only brackets and blanks lie between)."""
        lineno, col = node.left.end_lineno, node.left.end_col_offset
        if lineno is None or col is None:
            return self.offset(node)
        after_left = self.position(lineno, col)
        found = self.text.find(symbol, after_left)
        return found if found >= 0 else self.offset(node)

    def position(self, lineno: int, col: int) -> int:
        """0-based character offset in the original text of an ``ast`` position.

        ``ast`` reports a 1-based line and a UTF-8 *byte* column; a config editor needs
        characters, which differ as soon as a metric name has an accent.
        """
        starts = _line_starts(self.source)
        line_start = starts[lineno - 1]
        encoded = self.source[line_start:].encode("utf-8")
        column = len(encoded[:col].decode("utf-8", errors="ignore"))
        return self.lead + line_start + column
