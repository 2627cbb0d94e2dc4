"""Load `sdctl.yaml` into the model, reporting every problem with its field path and line."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from sdctl.config.model import Config
from sdctl.errors import ConfigError

DEFAULT_PATH = "sdctl.yaml"
ENV_VAR = "SDCTL_CONFIG"
#: Bounds on what a config may cost to read, whatever the file holds: its size (the example is
#: 12 KB; the largest valid config, 16 runtimes with every option, is under 40 KB), the values
#: it expands to through YAML aliases (a 1 KB "billion laughs" file expands to 10^9), and how
#: much of a bad value an error quotes.
MAX_BYTES = 1024 * 1024
MAX_VALUES = 100_000
EXCERPT = 60

Path_ = tuple[Any, ...]


def config_path(explicit: str | os.PathLike | None = None) -> Path:
    """The config file to use: the flag, else $SDCTL_CONFIG, else ./sdctl.yaml."""
    return Path(explicit or os.environ.get(ENV_VAR) or DEFAULT_PATH)


def example_text() -> str:
    """The documented example config (shipped beside the package or inside the wheel)."""
    import sdctl

    here = Path(sdctl.__file__).parent
    for candidate in (here / "resources" / "sdctl.example.yaml", here.parent / "sdctl.example.yaml"):
        if candidate.is_file():
            return candidate.read_text()
    raise FileNotFoundError("sdctl.example.yaml is missing from this installation")


def load(path: str | os.PathLike | None = None) -> Config:
    p = config_path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"config file {p} not found",
            hint="run `sdctl init` to write one, or pass -c/--config (env SDCTL_CONFIG)",
        ) from None
    except OSError as e:
        raise ConfigError(f"cannot read {p}: {e.strerror}") from None
    if len(data) > MAX_BYTES:
        raise ConfigError(f"{p} is {len(data):,} bytes; a config is at most {MAX_BYTES:,}",
                          hint="is this the right file? (sdctl.example.yaml, fully commented, is 12 KB)")
    return parse(decode(data, str(p)), source=str(p))


def decode(data: bytes, source: str) -> str:
    """YAML text from a file's bytes: UTF-8, or UTF-16/32 with a byte-order mark (what Windows
    editors write; YAML 1.2 allows them). Anything else is a ConfigError naming the line."""
    import codecs

    for bom, encoding in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                          (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
                          (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError:
                break
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ConfigError(
            f"{source} is not UTF-8 text: byte 0x{data[e.start]:02x} on line {line} cannot be read",
            [{"path": "", "line": line, "message": "not UTF-8 (save the file as UTF-8)", "file": source}],
            hint="save it as UTF-8 (most editors: Save with Encoding > UTF-8)") from None


def excerpt(value, limit: int = EXCERPT) -> str:
    """A value as an error quotes it: its repr, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(str(value)):,} characters)"


def parse(text: str, source: str = DEFAULT_PATH) -> Config:
    if len(text) > MAX_BYTES:
        raise ConfigError(f"{source} is {len(text):,} characters; a config is at most {MAX_BYTES:,}")
    data, lines, problems = _read_yaml(text)
    if data is None and not problems:
        problems.append({"path": "", "line": 1, "message": "the file is empty"})
    elif data is not None and not isinstance(data, dict):
        problems.append({"path": "", "line": 1, "message": "the top level must be a mapping of keys"})
    runtimes = data.get("runtimes") if isinstance(data, dict) else None
    if isinstance(runtimes, list) and len(runtimes) > 16:  # before validating each of them
        problems.append({"path": "runtimes", "line": lines.get(("runtimes",)),
                         "message": f"{len(runtimes):,} runtimes; at most 16"})
        data = None
    if isinstance(data, dict):
        try:
            cfg = Config.model_validate(data)
        except ValidationError as e:
            problems.extend(_problems(e, lines))
        else:
            if not problems:
                return cfg
    raise ConfigError(_summary(source, problems), [dict(p, file=source) for p in problems])


def _summary(source: str, problems: list[dict]) -> str:
    n = len(problems)
    return f"{source}: {n} problem{'s' if n != 1 else ''} found"


#: libyaml's parser when PyYAML was built with it (every wheel on PyPI is): 10x faster than
#: the pure-Python one, with the same marks (lines) and the same safe constructors.
SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read_yaml(text: str) -> tuple[Any, dict[Path_, int], list[dict]]:
    """Parse YAML and remember the line of every key and list item."""
    try:
        node = yaml.compose(text, Loader=SafeLoader)
        if node is not None and _expanded(node, {}) > MAX_VALUES:
            return None, {}, [{"path": "", "line": 1, "message": f"the YAML holds more than {MAX_VALUES:,} values "
                               "(counting each time an alias, *name, repeats one); a config needs far fewer"}]
        data = yaml.load(text, Loader=SafeLoader) if node is not None else None  # noqa: S506 (a safe loader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        line = mark.line + 1 if mark else None
        return None, {}, [{"path": "", "line": line, "message": f"invalid YAML: {e.problem}"}]
    except yaml.YAMLError as e:  # e.g. a control character: the reader stops before any mark
        line = text.count("\n", 0, getattr(e, "position", 0) or 0) + 1
        reason = getattr(e, "reason", None) or str(e).splitlines()[0]
        return None, {}, [{"path": "", "line": line, "message": f"invalid YAML: {reason}"}]
    if node is None:
        return None, {}, []
    lines: dict[Path_, int] = {(): node.start_mark.line + 1}
    problems: list[dict] = []
    _walk(node, (), lines, problems)
    return data, lines, problems


def _expanded(node: yaml.Node, memo: dict[int, int]) -> int:
    """How many values the node stands for once every alias is expanded (each node counted once
    per place it appears); memoized per node, so a file of aliases costs its size, not theirs."""
    key = id(node)
    if key not in memo:
        memo[key] = 0  # a recursive alias counts nothing more (PyYAML refuses it when loading)
        children = [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else \
            node.value if isinstance(node, yaml.SequenceNode) else []
        total = 1
        for child in children:
            total += _expanded(child, memo)
            if total > MAX_VALUES:
                break
        memo[key] = total
    return memo[key]


def _walk(node: yaml.Node, path: Path_, lines: dict[Path_, int], problems: list[dict]) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            line = key_node.start_mark.line + 1
            if key in seen:
                problems.append({
                    "path": _dotted(path + (key,)),
                    "line": line,
                    "message": f"duplicate key (first set on line {seen[key]}); one value would be lost",
                })
            seen[key] = line
            lines[path + (key,)] = line
            _walk(value_node, path + (key,), lines, problems)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[path + (i,)] = item.start_mark.line + 1
            _walk(item, path + (i,), lines, problems)


def _problems(err: ValidationError, lines: dict[Path_, int]) -> list[dict]:
    out = []
    for e in err.errors(include_url=False):
        loc = tuple(e["loc"])
        message = e["msg"]
        if e["type"] == "extra_forbidden":
            message = "unknown key (check the spelling; see sdctl.example.yaml)"
        elif e["type"] == "missing":
            message = "required key is missing"
        elif e["type"] == "string_pattern_mismatch":
            hint = _PATTERN_HINTS.get(next((x for x in reversed(loc) if isinstance(x, str)), ""))
            message = f"{excerpt(e['input'])} is not valid" + (f": use {hint}" if hint else f" ({message})")
        elif message.startswith("Value error, "):
            message = message[len("Value error, "):]
        out.append({"path": _dotted(loc), "line": _line_for(loc, lines), "message": message})
    return out


_PATTERN_HINTS = {
    "stackName": "lowercase letters, digits and '-', starting with a letter, at most 24 characters",
    "name": "lowercase letters, digits and '-' (a DNS label), at most 40 characters",
    "namespace": "a Kubernetes namespace (lowercase letters, digits and '-')",
    "region": "an AWS region code such as us-west-2",
    "bucketName": "a valid S3 bucket name (3-63 lowercase letters, digits, '.' and '-')",
    "stageName": "letters, digits and '_'",
    "prefix": "an S3 key prefix of letters, digits and !_.*'()- separated by '/'",
    "consolidateAfter": "a duration like 30s, 5m, 1h or Never",
    "instanceTypes": "an EC2 instance type such as g5.xlarge",
}


def _line_for(loc: Path_, lines: dict[Path_, int]) -> int | None:
    while loc:
        if loc in lines:
            return lines[loc]
        loc = loc[:-1]
    return lines.get(())


def _dotted(loc: Path_) -> str:
    s = ""
    for part in loc:
        if isinstance(part, int):
            s += f"[{part}]"
        else:
            s += ("." if s else "") + str(part)
    return s
