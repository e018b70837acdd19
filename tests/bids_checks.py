"""Check a samba-bids output folder against the BIDS schema (bidsschematools).

Used by the end-to-end tests on every output folder they make.
"""

import fnmatch
import json
from functools import lru_cache
from pathlib import Path

from samba_bids.bids.derivatives import sidecar_path

#: BIDS-Derivatives suffixes that the raw-data schema does not list.
DERIVATIVE_SUFFIXES = {"timeseries"}


@lru_cache(maxsize=1)
def _schema():
    from bidsschematools import schema

    s = schema.load_schema()
    order = [s.objects.entities[name]["name"] for name in s.rules.entities]
    return order, set(s.objects.suffixes) | DERIVATIVE_SUFFIXES


def _ignored(rel: str, patterns) -> bool:
    for pattern in patterns:
        if pattern.endswith("/"):
            if rel.startswith(pattern):
                return True
        elif fnmatch.fnmatch(Path(rel).name, pattern) or fnmatch.fnmatch(rel, pattern):
            return True
    return False


def check_derivatives(out) -> list:
    """Assert every output's name and sidecar; return the data files checked.

    * the name's entities are schema entities, in the schema's order, with the file's folder's
      ``sub``/``ses`` (group outputs under ``group/`` have neither);
    * the suffix is a BIDS suffix, or the file is covered by ``.bidsignore``;
    * every data file has a JSON sidecar whose ``Sources`` are BIDS URIs;
    * ``dataset_description.json`` is a derivative description; no temporary file is left.
    """
    out = Path(out)
    order, suffixes = _schema()
    description = json.loads((out / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    assert description["GeneratedBy"][0]["Name"] == "samba-bids"
    patterns = (out / ".bidsignore").read_text().split()
    assert not list(out.rglob(".tmp-*")), "temporary files left behind"
    checked = []
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        rel = path.relative_to(out).as_posix()
        if rel in ("dataset_description.json", ".bidsignore") or path.name.startswith("."):
            continue
        if rel.startswith("logs/") or path.suffix == ".html":
            assert _ignored(rel, patterns), f"{rel} is not in .bidsignore"
            continue
        parts = path.name.split(".")[0].split("_")
        *pairs, suffix = parts
        keys = [pair.split("-", 1)[0] for pair in pairs]
        assert all("-" in pair and pair.split("-", 1)[1] for pair in pairs), rel
        unknown = [k for k in keys if k not in order]
        assert not unknown, f"{rel}: entities {unknown} are not BIDS entities"
        positions = [order.index(k) for k in keys]
        assert positions == sorted(positions) and len(set(keys)) == len(keys), \
            f"{rel}: entities out of BIDS order"
        top = rel.split("/")[0]
        if top == "group":
            assert "sub" not in keys and "ses" not in keys, rel
        else:
            assert top.startswith("sub-") and pairs[0] == top, f"{rel}: not under its subject"
            ses = [p for p in rel.split("/") if p.startswith("ses-")]
            if ses:
                assert ses[0] in pairs, f"{rel}: not under its session"
        assert suffix in suffixes or _ignored(rel, patterns), \
            f"{rel}: suffix {suffix!r} is neither BIDS nor in .bidsignore"
        if path.suffix == ".json":
            continue
        sidecar = sidecar_path(path)
        assert sidecar.is_file(), f"{rel} has no sidecar"
        sources = json.loads(sidecar.read_text()).get("Sources")
        assert sources and all(s.startswith("bids:") for s in sources), \
            f"{sidecar.name}: Sources must be BIDS URIs"
        checked.append(path)
    assert checked, f"{out} holds no outputs"
    return checked
