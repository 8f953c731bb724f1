"""Small pure HTML builders for pcdrl/evaluation/report.py: escaping, numbers with intervals, tables, example cards.

Every piece of text from a summary or an example (labels come from an LM labeller and can hold any
characters) goes through `esc`; a builder that returns markup wraps it in `Raw` so `table` knows not to
escape it twice. Missing values render as an en dash instead of raising, because any summary key may be
absent (controls turned off, one judge, an older eval folder).
"""
from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path

from pcdrl.explanations.formula import quote_label

DASH = "\u2013"


class Raw(str):
    """Markup built here, already escaped: `table` and `cell` pass it through unchanged."""


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def cell(value) -> str:
    return value if isinstance(value, Raw) else esc(value)


def num(value, digits: int = 3) -> str:
    """A number to `digits` decimals; an en dash for missing or non-numeric values."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return DASH
    return f"{value:.{digits}f}"


def interval(pair, digits: int = 3) -> str:
    if not isinstance(pair, (list, tuple)) or len(pair) != 2:
        return ""
    return f"[{num(pair[0], digits)}, {num(pair[1], digits)}]"


def with_ci(value, pair, signed: bool = False) -> Raw:
    """'0.350 [0.300, 0.400]' with the interval in a muted span; '+' on gains so the sign reads at a glance."""
    text = num(value)
    if signed and text != DASH and value > 0:
        text = "+" + text
    ci = interval(pair)
    return Raw(esc(text) + (f' <span class="ci">{esc(ci)}</span>' if ci else ""))


def gain_class(pair) -> str:
    """'up' when the whole 95% interval is above zero, 'down' when below, '' when it straddles zero."""
    if not isinstance(pair, (list, tuple)) or len(pair) != 2 or num(pair[0]) == DASH or num(pair[1]) == DASH:
        return ""
    return "up" if pair[0] > 0 else "down" if pair[1] < 0 else ""


def gain_cell(value, pair) -> Raw:
    cls = gain_class(pair)
    inner = with_ci(value, pair, signed=True)
    return Raw(f'<span class="gain {cls}">{inner}</span>' if cls else inner)


def table(header: list, rows: list[list], cls: str = "") -> Raw:
    """A plain table; cells are escaped unless they are `Raw`."""
    head = "".join(f"<th>{cell(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(c)}</td>" for c in row) + "</tr>" for row in rows)
    attr = f' class="{esc(cls)}"' if cls else ""
    return Raw(f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def image(path: Path, alt: str) -> Raw:
    """The PNG inlined as a base64 data URI, so the page is one file that opens anywhere offline."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return Raw(f'<img alt="{esc(alt)}" src="data:image/png;base64,{data}">')


def label_text(label) -> str:
    """A shown concept: a plain label string, or a {"id", "label"} record written as 'id: label'."""
    if isinstance(label, dict):
        return f"{label.get('id', '?')}: {label.get('label', '')}"
    return str(label)


def label_list(labels) -> Raw:
    if not labels:
        return Raw('<p class="muted">(none)</p>')
    return Raw("<ul>" + "".join(f"<li>{esc(label_text(x))}</li>" for x in labels) + "</ul>")


def _picks(values) -> set[int]:
    """Indices of the largest probability; several on a tie (a flat prior picks nothing in particular)."""
    nums = [v if num(v) != DASH else -math.inf for v in values]
    top = max(nums, default=-math.inf)
    return {i for i, v in enumerate(nums) if v == top} if top > -math.inf else set()


def probs_table(options: list, answer, probs: dict[str, list]) -> Raw:
    """Option probabilities of one judge under each row; the judge's pick (argmax) is highlighted per column."""
    cols = [r for r in ("prior", "pretrained", "rl", "oracle") if r in probs]
    picks = {r: _picks(probs[r]) for r in cols}
    head = "".join(f"<th>{esc(r)}</th>" for r in ["option", *cols])
    body = []
    for i, option in enumerate(options):
        mark = ' class="true"' if i == answer else ""
        cells = []
        for r in cols:
            values = probs[r]
            value = values[i] if i < len(values) else None
            if i in picks[r]:
                kind = "pick tie" if len(picks[r]) > 1 else "pick right" if i == answer else "pick wrong"
                cells.append(f'<td class="{kind}">{esc(num(value, 2))}</td>')
            else:
                cells.append(f"<td>{esc(num(value, 2))}</td>")
        body.append(f"<tr{mark}><td>{esc(chr(65 + i) if i < 26 else i)}</td>{''.join(cells)}</tr>")
    return Raw(f'<table class="probs"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>')


SHOWN_POSITIONS = 8
"""Firing positions listed per literal on the page; examples.jsonl lists them all."""


def _token(text) -> str:
    """A token as a quoted literal, so leading spaces and newlines are visible ('" the"', '"\\n"')."""
    return json.dumps(str(text), ensure_ascii=False)


def _spot(spot: dict) -> str:
    """'token 5 " def" (3.210, rank 2)': a read position, its token, the pre-activation and the rank there."""
    return (f"token {esc(spot.get('position', '?'))} <code>{esc(_token(spot.get('token', '')))}</code> "
            f"({esc(num(spot.get('value')))}, rank {esc(spot.get('rank', DASH))})")


def literal_line(line: dict, n_positions, k="k") -> Raw:
    """One literal: true/false, its label (NOT when negated) and the read positions that make it so."""
    verdict = "true" if line.get("true") else "false"
    label = ("NOT " if line.get("negated") else "") + quote_label(str(line.get("label", "")))
    spots = [x for x in line.get("positions") or [] if isinstance(x, dict)]
    of = f" of {esc(n_positions)}" if n_positions is not None else ""
    if spots:
        more = len(spots) - SHOWN_POSITIONS
        where = (f"in the top-{esc(k)} at {esc(len(spots))}{of} read positions: "
                 + ", ".join(_spot(x) for x in spots[:SHOWN_POSITIONS])
                 + (f", and {esc(more)} more (examples.jsonl lists them)" if more > 0 else ""))
    else:
        closest = line.get("closest")
        where = (f"in the top-{esc(k)} at none{of} read positions"
                 + (f"; closest: {_spot(closest)}" if isinstance(closest, dict) else ""))
    return Raw(f'<li class="{verdict}"><span class="verdict">{verdict}</span> '
               f'<b>{esc(label)}</b> <span class="muted">(c{esc(line.get("concept", "?"))})</span>: {where}</li>')


def evidence_block(found) -> Raw:
    """Under a formula: whether it is true on the item, then one `literal_line` per literal."""
    if not isinstance(found, dict):
        return Raw("")
    n = found.get("n_positions")
    head = (f'<p class="muted">The formula is {"true" if found.get("true") else "false"} on this item. A literal holds '
            f"where its concept is in the PCD encoder's top-{esc(found.get('k', 'k'))} at one of the item's "
            f"{esc(n if n is not None else '?')} read positions (token index in S's input; rank 1 is the highest "
            "pre-activation).</p>")
    lines = "".join(literal_line(x, n, found.get("k", "k")) for x in found.get("literals") or [] if isinstance(x, dict))
    return Raw(f'<div class="evidence">{head}<ul>{lines}</ul></div>')


def _other_seeds(evidence: dict) -> str:
    """The RL formulas of seeds after the first (rows rl/1, rl/2, ...), folded away under the two columns."""
    rows = [r for r in evidence if r.startswith("rl/")]
    if not rows:
        return ""
    body = "".join(f"<h4>{esc(r)}</h4><pre>{esc(evidence[r].get('text', ''))}</pre>{evidence_block(evidence[r])}"
                   for r in rows if isinstance(evidence[r], dict))
    return f"<details><summary>RL formulas of the other seeds ({esc(len(rows))})</summary>{body}</details>"


def example_card(example: dict, judges: list[str]) -> Raw:
    """One example: what S read and did, the question, both explanations side by side, each judge's answers."""
    options = example.get("options") or []
    answer = example.get("answer")
    opts = "".join(
        f'<li{" class=true" if i == answer else ""}>{esc(o)}'
        f'{" <span class=tag>S&#x27;s answer</span>" if i == answer else ""}</li>'
        for i, o in enumerate(options))
    labels = example.get("labels") or {}
    evidence = example.get("evidence") if isinstance(example.get("evidence"), dict) else {}
    kind = "formula" if example.get("formulas") else "labels"
    columns = {r: label_list(labels.get(r)) + evidence_block(evidence.get(r)) for r in ("pretrained", "rl")}
    probs = example.get("probs") or {}
    judge_names = [j for j in judges if j in probs] + [j for j in probs if j not in judges]
    per_judge = "".join(
        f'<div class="judge"><h4>judge: {esc(j)}</h4>{probs_table(options, answer, probs[j])}</div>'
        for j in judge_names)
    meta = " \u00b7 ".join(esc(x) for x in (example.get("id"), example.get("family")) if x)
    return Raw(f"""<article class="card">
<header><span class="muted">{meta}</span></header>
<h4>Input S read</h4><pre>{esc(example.get("text", ""))}</pre>
<h4>Question</h4><p class="question">{esc(example.get("question", ""))}</p>
<ol type="A" class="options">{opts}</ol>
<h4>What S actually did</h4><pre>{esc(example.get("behaviour", ""))}</pre>
<div class="cols"><div class="labels before"><h4>Pretrained {kind}</h4>{columns["pretrained"]}</div>
<div class="labels after"><h4>RL {kind}</h4>{columns["rl"]}</div></div>{_other_seeds(evidence)}
<div class="judges">{per_judge}</div>
</article>""")
