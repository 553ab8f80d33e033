"""Imports run one way: cli → bench → inference → tasks → convert → train → data/objectives/decoding/eval → models →
nn → audio/text → kernels. Every import statement of the package counts, function-level ones included."""
import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

LAYERS = (  # highest first: a unit may import the units of lower layers (and the foundation), never higher ones
    {"__main__"},
    {"cli"},
    {"bench"},
    {"inference"},
    {"tasks"},
    {"convert"},
    {"train"},
    {"data", "objectives", "decoding", "eval"},
    {"models"},
    {"nn"},
    {"audio", "text"},
    {"kernels"},
)
# importable by every unit but kernels; each imports only foundation modules listed after it
FOUNDATION = ("config", "parallel", "paths", "errors")
ONLY = {  # narrower rules than the layers give
    "models": {"nn", "audio", "text", "kernels", "errors"},  # models know nothing of training, data or configs
    "kernels": set(),  # kernels import nothing of audiojax
}


def _unit(path: pathlib.Path) -> str:
  parts = path.relative_to(ROOT).with_suffix("").parts
  if parts[0] == "kernels":
    return "kernels"
  return parts[1] if len(parts) > 1 else "__init__"


def _imported_units(source: str) -> set[str]:
  units = set()
  for node in ast.walk(ast.parse(source)):
    if isinstance(node, ast.Import):
      modules = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
      # `from audiojax import parallel` imports the unit `parallel`
      modules = [f"{node.module}.{a.name}" for a in node.names] if node.module == "audiojax" else [node.module]
    else:
      continue
    units.update(m.split(".")[1] for m in modules if m.startswith("audiojax.") and len(m.split(".")) > 1)
  return units


def import_edges(extra: dict[str, str] | None = None) -> dict[str, set[str]]:
  """``{unit: units it imports}`` over ``audiojax/`` and ``kernels/``; ``extra`` adds ``{relative path: source}``
  as if those lines were in the package."""
  sources = {p: p.read_text() for d in ("audiojax", "kernels") for p in (ROOT / d).rglob("*.py")}
  for rel, text in (extra or {}).items():
    path = ROOT / rel
    sources[path] = sources.get(path, "") + "\n" + text
  edges: dict[str, set[str]] = {}
  for path, text in sources.items():
    unit = _unit(path)
    edges.setdefault(unit, set()).update(_imported_units(text) - {unit, "__init__"})
  return edges


def _layer(unit: str) -> int | None:
  return next((i for i, layer in enumerate(LAYERS) if unit in layer), None)


def violations(edges: dict[str, set[str]]) -> list[str]:
  found = []
  for src, targets in sorted(edges.items()):
    for dst in sorted(targets):
      if src in ONLY:
        ok = dst in ONLY[src]
      elif src in FOUNDATION:
        ok = dst in FOUNDATION[FOUNDATION.index(src) + 1:]
      elif dst in FOUNDATION:
        ok = True
      else:
        s, d = _layer(src), _layer(dst)
        ok = s is not None and d is not None and d > s
      if not ok:
        found.append(f"{src} → {dst}")
  return found


def test_every_unit_is_placed():
  placed = set().union(*LAYERS) | set(FOUNDATION) | {"__init__"}
  assert set(import_edges()) <= placed, set(import_edges()) - placed


def test_imports_run_one_way():
  assert violations(import_edges()) == []


@pytest.mark.parametrize("path,line,edge", [
    ("audiojax/models/ced.py", "from audiojax.train import loop", "models → train"),
    ("audiojax/models/ced.py", "from audiojax import config", "models → config"),
    ("audiojax/nn/attention.py", "def f():\n  from audiojax.models import ced", "nn → models"),
    ("kernels/flash_attention.py", "import audiojax.errors", "kernels → errors"),
    ("audiojax/train/loop.py", "from audiojax.tasks import registry", "train → tasks"),
    ("audiojax/tasks/asr.py", "from audiojax.inference import transcriber", "tasks → inference"),
])
def test_an_edge_against_the_order_is_caught(path, line, edge):
  assert edge in violations(import_edges({path: line}))
