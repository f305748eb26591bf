"""Small questions about libcst trees that every rewriting step asks: what is a test, what is a
generic name, what a piece of code reads like, which names are already taken."""

from __future__ import annotations

import builtins
import keyword
import re
from collections.abc import Iterator

import libcst as cst

# Names a generator numbers instead of choosing: Pynguin's var_12, int_0, str_3, module_0, and test_4.
GENERIC_TEST = re.compile(r"^test(_case)?_?\d*$")
GENERIC_VARIABLE = re.compile(
    r"^(var|int|float|complex|str|bytes|bool|list|dict|set|tuple|none_type|object|type|callable)_\d+$"
)
# In a test a generator named by number, any `<word>_<n>` is its numbering too (Pynguin's cart_0).
NUMBERED = re.compile(r"^[a-z][a-z0-9_]*?_\d+$")
GENERIC_MODULE = re.compile(r"^module_\d+$")
RESERVED = set(dir(builtins)) | set(keyword.kwlist) | set(keyword.softkwlist)
_EMPTY = cst.Module(body=[])


def code(node: cst.CSTNode) -> str:
    return _EMPTY.code_for_node(node)


def snake(name: str) -> str:
    """CamelCase and dunder names as snake_case words: OutOfStock -> out_of_stock, __eq__ -> eq."""
    name = name.strip("_")
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name)
    return re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower()


def is_class_name(name: str) -> bool:
    """CapWords, as PEP 8 names classes (and exceptions): what a call constructs an instance of."""
    return bool(re.match(r"^_?[A-Z][A-Za-z0-9]*[a-z][A-Za-z0-9]*$", name))


def last_name(node: cst.BaseExpression) -> str:
    """`Cart` for Cart, mod.Cart and pkg.mod.Cart; '' for anything that is not a (dotted) name."""
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        return node.attr.value
    return ""


def is_test(node: cst.CSTNode) -> bool:
    return isinstance(node, cst.FunctionDef) and node.name.value.startswith("test")


def is_test_class(node: cst.CSTNode) -> bool:
    return isinstance(node, cst.ClassDef) and node.name.value.startswith("Test")


def tests_of(module: cst.Module) -> Iterator[tuple[str, cst.FunctionDef]]:
    """(qualified name, node) of each test pytest collects: `test_x` and `TestY.test_z`."""
    for node in module.body:
        if is_test(node):
            yield node.name.value, node
        elif is_test_class(node):
            for member in node.body.body:
                if is_test(member):
                    yield f"{node.name.value}.{member.name.value}", member


def statements(body: cst.BaseSuite) -> list[cst.BaseStatement]:
    return list(body.body) if isinstance(body, cst.IndentedBlock) else []


def small_statement(statement: cst.BaseStatement) -> cst.BaseSmallStatement | None:
    """The one small statement of a line like `x = f()` or `assert x`; None for compound statements
    and for lines of several statements joined with `;`."""
    if isinstance(statement, cst.SimpleStatementLine) and len(statement.body) == 1:
        return statement.body[0]
    return None


def single_target(statement: cst.BaseStatement) -> tuple[str, cst.BaseExpression] | None:
    """(name, value) of `name = value`."""
    small = small_statement(statement)
    if isinstance(small, cst.Assign) and len(small.targets) == 1 and isinstance(small.targets[0].target, cst.Name):
        return small.targets[0].target.value, small.value
    return None


def free_name(wanted: str, taken: set[str]) -> str:
    """`wanted`, else wanted_2, wanted_3, ...; never a builtin or keyword."""
    if wanted not in taken and wanted not in RESERVED:
        return wanted
    n = 2
    while f"{wanted}_{n}" in taken:
        n += 1
    return f"{wanted}_{n}"


def root_name(node: cst.BaseExpression) -> cst.Name | None:
    """`pkg` of pkg.mod.Cart."""
    while isinstance(node, cst.Attribute):
        node = node.value
    return node if isinstance(node, cst.Name) else None


class VariableVisitor(cst.CSTVisitor):
    """Visits the names used as variables: not an attribute after a dot, a keyword argument's name or
    an import; statements and functions whose node id is in `skipped` are not entered."""

    def __init__(self, skipped: set[int] | None = None) -> None:
        self.skipped = skipped or set()
        self.variables: set[str] = set()

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return id(node) not in self.skipped

    def visit_SimpleStatementLine(self, node: cst.SimpleStatementLine) -> bool:
        return id(node) not in self.skipped

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        node.value.visit(self)
        return False

    def visit_Arg(self, node: cst.Arg) -> bool:
        node.value.visit(self)
        return False

    def visit_Import(self, node: cst.Import) -> bool:
        return False

    def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
        return False

    def visit_Name(self, node: cst.Name) -> None:
        self.variables.add(node.value)


def variables_in(node: cst.CSTNode, skipped: set[int] | None = None) -> set[str]:
    visitor = VariableVisitor(skipped)
    node.visit(visitor)
    return visitor.variables


def bound_by(statement: cst.BaseStatement) -> set[str]:
    """The module-level names a simple statement, a def or a class binds."""
    if isinstance(statement, (cst.FunctionDef, cst.ClassDef)):
        return {statement.name.value}
    small = small_statement(statement)
    if isinstance(small, cst.Import):
        return {a.asname.name.value if a.asname else code(a.name).split(".")[0] for a in small.names}
    if isinstance(small, cst.ImportFrom) and not isinstance(small.names, cst.ImportStar):
        return {a.asname.name.value if a.asname else code(a.name) for a in small.names}
    if isinstance(small, cst.Assign):
        return {t.target.value for t in small.targets if isinstance(t.target, cst.Name)}
    if isinstance(small, (cst.AnnAssign, cst.AugAssign)) and isinstance(small.target, cst.Name):
        return {small.target.value}
    return set()


def module_names(module: cst.Module) -> set[str]:
    return {name for statement in module.body for name in bound_by(statement)}
