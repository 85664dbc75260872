#!/usr/bin/env python3
"""Static checks of the Windows PowerShell scripts (there is no PowerShell on the build machines).

    check_powershell.py FILE.ps1...      (run by scripts/check-powershell.sh)

Parses each script with tree-sitter's PowerShell grammar and checks, as PowerShell would bind
them, every call of a function that the same script defines:

* the script parses without syntax errors;
* named arguments name a parameter of the function (or an unambiguous prefix of one);
* positional arguments go to the positional parameters in PowerShell's order: explicit
  `Position = N` first; without any explicit position, declaration order (switches are never
  positional), unless `[CmdletBinding(PositionalBinding = $false)]`; a function that mixes
  explicit and implicit positions is refused (PowerShell then leaves the others named-only);
* a script block literal binds only to a [scriptblock] (or untyped) parameter, and a
  [scriptblock] parameter gets a script block, not a string: the smoke test once declared
  `param([string] $Name, [string[]] $Needs, [scriptblock] $Body)` and called
  `Step 'name' { ... }`, so every body became a string in $Needs and every step was skipped;
* every mandatory parameter is bound.

For the smoke test's `Step` function, also: step names are unique, every `-Needs` name is an
earlier step, and `$MandatorySteps` lists exactly the steps (so the end-of-run check that every
mandatory step passed cannot miss one).

Exit status 0 when all checks pass, 1 otherwise (each finding printed as FILE:LINE: message).
"""

import sys

import tree_sitter
import tree_sitter_powershell

COMMON_PARAMETERS = {
    "verbose", "debug", "erroraction", "warningaction", "informationaction",
    "errorvariable", "warningvariable", "informationvariable", "outvariable",
    "outbuffer", "pipelinevariable", "progressaction",
}


def text(node):
    return node.text.decode("utf-8", "replace")


def walk(node):
    yield node
    for child in node.children:
        yield from walk(child)


def first(node, kind):
    for n in walk(node):
        if n.type == kind:
            return n
    return None


def unwrap(node):
    """The innermost single-child expression node (array_literal_expression -> ... -> leaf)."""
    while node.child_count == 1 and node.type not in ("string_literal", "script_block_expression",
                                                       "array_expression", "variable"):
        node = node.children[0]
    return node


class Param:
    def __init__(self, name, ptype, position, mandatory, order):
        self.name = name
        self.type = ptype  # lower-case type name without brackets, or None
        self.position = position
        self.mandatory = mandatory
        self.order = order


class Function:
    def __init__(self, name, params, positional_binding, line):
        self.name = name
        self.params = params
        self.positional_binding = positional_binding
        self.line = line

    def positional(self):
        explicit = [p for p in self.params if p.position is not None]
        if explicit or not self.positional_binding:
            return sorted(explicit, key=lambda p: p.position)
        return [p for p in self.params if p.type != "switch"]


def attribute_args(attr):
    """{name.lower(): value text} of an attribute's arguments; bare names map to '$true'."""
    args = {}
    for arg in attr.children:
        if arg.type != "attribute_arguments":
            continue
        for a in arg.children:
            if a.type != "attribute_argument":
                continue
            name = first(a, "simple_name")
            if name is None:
                continue
            value = text(a)[len(text(name)):].strip()
            args[text(name).lower()] = value.lstrip("=").strip() if value else "$true"
    return args


def parse_function(node, errors, path):
    name = text(node.child_by_field_name("name") or first(node, "function_name"))
    block = first(node, "param_block")
    params = []
    positional_binding = True
    if block is None:
        return Function(name, params, positional_binding, node.start_point[0] + 1)
    for child in block.children:
        if child.type == "attribute_list":
            for attr in child.children:
                if attr.type == "attribute" and text(first(attr, "attribute_name")).lower() == "cmdletbinding":
                    if attribute_args(attr).get("positionalbinding", "$true").lower() == "$false":
                        positional_binding = False
    plist = first(block, "parameter_list")
    order = 0
    for sp in (plist.children if plist else []):
        if sp.type != "script_parameter":
            continue
        var = next((c for c in sp.children if c.type == "variable"), None)
        if var is None:
            continue
        ptype, position, mandatory = None, None, False
        for attrs in (c for c in sp.children if c.type == "attribute_list"):
            for attr in (a for a in attrs.children if a.type == "attribute"):
                type_literal = next((c for c in attr.children if c.type == "type_literal"), None)
                if type_literal is not None:
                    ptype = text(first(type_literal, "type_spec")).replace(" ", "").lower()
                    continue
                aname = text(first(attr, "attribute_name")).lower()
                if aname == "parameter":
                    args = attribute_args(attr)
                    if "position" in args:
                        position = int(args["position"])
                    mandatory = args.get("mandatory", "$false").lower() == "$true"
        params.append(Param(text(var)[1:], ptype, position, mandatory, order))
        order += 1
    fn = Function(name, params, positional_binding, node.start_point[0] + 1)
    explicit = [p for p in params if p.position is not None]
    if explicit and positional_binding and len(explicit) != len([p for p in params if p.type != "switch"]):
        errors.append(f"{path}:{fn.line}: function {name} gives some parameters a Position and not "
                      "others: set [CmdletBinding(PositionalBinding = $false)] or position every one")
    return fn


def arg_kind(node):
    inner = unwrap(node)
    if inner.type == "script_block_expression":
        return "scriptblock"
    if inner.type == "string_literal":
        return "string"
    if inner.type == "array_expression":
        return "array"
    return "other"


def bind_call(fn, command, errors, path):
    """Binds one call of `fn`; returns {param name: argument node}."""
    line = command.start_point[0] + 1
    elements = first(command, "command_elements")
    items = []  # ("param", name, colon) | ("arg", node)
    if elements is not None:
        colon = False
        for child in elements.children:
            if child.type == "command_argument_sep":
                colon = text(child).strip() == ":"
                if colon and items and items[-1][0] == "param":
                    items[-1] = ("param", items[-1][1], True)
                continue
            if child.type == "command_parameter":
                items.append(("param", text(child)[1:].rstrip(":"), text(child).endswith(":")))
            else:
                items.append(("arg", child))
    bound = {}
    positional_args = []
    i = 0
    while i < len(items):
        item = items[i]
        if item[0] == "arg":
            positional_args.append(item[1])
            i += 1
            continue
        name = item[1].lower()
        matches = [p for p in fn.params if p.name.lower() == name] or \
            [p for p in fn.params if p.name.lower().startswith(name)]
        if len(matches) != 1:
            if name not in COMMON_PARAMETERS:
                errors.append(f"{path}:{line}: {fn.name}: no single parameter matches -{item[1]}")
            i += 1
            continue
        param = matches[0]
        if param.type == "switch" and not item[2]:
            bound[param.name] = None
            i += 1
            continue
        if i + 1 >= len(items) or items[i + 1][0] != "arg":
            errors.append(f"{path}:{line}: {fn.name}: -{param.name} has no value")
            i += 1
            continue
        bound[param.name] = items[i + 1][1]
        i += 2
    free = [p for p in fn.positional() if p.name not in bound]
    for arg in positional_args:
        if not free:
            errors.append(f"{path}:{line}: {fn.name}: no positional parameter takes argument "
                          f"{text(arg)[:40]!r}")
            continue
        bound[free.pop(0).name] = arg
    for p in fn.params:
        arg = bound.get(p.name)
        if arg is None:
            if p.mandatory and p.name not in bound:
                errors.append(f"{path}:{line}: {fn.name}: mandatory -{p.name} is not bound")
            continue
        kind = arg_kind(arg)
        if kind == "scriptblock" and p.type not in (None, "scriptblock", "object"):
            errors.append(f"{path}:{line}: {fn.name}: a script block binds to -{p.name} "
                          f"([{p.type}]): {text(arg)[:40]!r}")
        if p.type == "scriptblock" and kind in ("string", "array"):
            errors.append(f"{path}:{line}: {fn.name}: -{p.name} is a [scriptblock] but gets "
                          f"{text(arg)[:40]!r}")
    return bound


def string_values(node, constants=None):
    """The strings of `'a'`, `@('a', 'b')` or `@($x)` (a variable assigned a string literal
    at the top of the script, from `constants`), in order, unquoted."""
    values = []
    for n in walk(node):
        if n.type == "string_literal":
            values.append(text(n)[1:-1])
        elif n.type == "variable" and constants and text(n).lower() in constants:
            values.append(constants[text(n).lower()])
    return values


def string_constants(tree):
    """`$name = 'literal'` assignments at the script's top level: {'$name': 'literal'}."""
    constants = {}
    statements = first(tree.root_node, "statement_list")
    for statement in (statements.children if statements else []):
        node = first(statement, "assignment_expression")
        if node is None or node.start_point != statement.start_point:
            continue
        target = node.children[0]
        value = unwrap(node.children[-1])
        if target.type == "left_assignment_expression":
            target = unwrap(target)
        if target.type == "variable" and value.type == "string_literal" and \
                first(value, "variable") is None:
            constants[text(target).lower()] = text(value)[1:-1]
    return constants


def check_steps(calls, tree, errors, path):
    constants = string_constants(tree)
    names = []
    for command, bound in calls:
        line = command.start_point[0] + 1
        name_node = bound.get("Name")
        values = string_values(name_node, constants) if name_node is not None else []
        if len(values) != 1:
            errors.append(f"{path}:{line}: Step without a literal name (or a variable set to one)")
            continue
        name = values[0]
        if name in names:
            errors.append(f"{path}:{line}: step {name!r} declared twice")
        needs = bound.get("Needs")
        for need in (string_values(needs, constants) if needs is not None else []):
            if need not in names:
                errors.append(f"{path}:{line}: step {name!r} needs {need!r}, which is not an earlier step")
        names.append(name)
    mandatory = None
    for node in walk(tree.root_node):
        if node.type == "assignment_expression" and text(node).lower().startswith("$mandatorysteps"):
            mandatory = string_values(node)
            break
    if mandatory is None:
        errors.append(f"{path}: no $MandatorySteps list")
        return
    for name in mandatory:
        if name not in names:
            errors.append(f"{path}: $MandatorySteps names {name!r}, which is no step")
    for name in names:
        if name not in mandatory:
            errors.append(f"{path}: step {name!r} is missing from $MandatorySteps")


def check(path, parser):
    errors = []
    tree = parser.parse(open(path, "rb").read())
    for node in walk(tree.root_node):
        if node.type == "ERROR" or node.is_missing:
            errors.append(f"{path}:{node.start_point[0] + 1}: syntax error near {text(node)[:40]!r}")
    functions = {}
    for node in walk(tree.root_node):
        if node.type == "function_statement":
            fn = parse_function(node, errors, path)
            functions[fn.name.lower()] = fn
    steps = []
    calls = 0
    for node in walk(tree.root_node):
        if node.type != "command":
            continue
        name = first(node, "command_name")
        fn = functions.get(text(name).lower()) if name is not None else None
        if fn is None:
            continue
        calls += 1
        bound = bind_call(fn, node, errors, path)
        if fn.name.lower() == "step":
            steps.append((node, bound))
    if "step" in functions:
        check_steps(steps, tree, errors, path)
    return errors, len(functions), calls


def main(paths):
    parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))
    failed = False
    for path in paths:
        errors, functions, calls = check(path, parser)
        for e in errors:
            print(e)
        failed |= bool(errors)
        print(f"check_powershell: {path}: {functions} functions, {calls} calls checked, "
              f"{len(errors)} finding(s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
