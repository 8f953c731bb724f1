"""What a policy shows the judge, beyond a set of concepts: propositional formulas over PCD concepts.

- `formula`: the tree (`Literal`, `Not`, `And`, `Or`), `size`, `depth`, `concepts`, `canonical`, and printing
  (`to_text` with quoted labels for readers, `to_id_text` with concept ids);
- `parse`: text (either printed form) back to a tree, with errors that name the position or the label;
- `config`: `FormulaConfig` (max_literals, max_depth, operators), `fits` and `violations`;
- `truth`: whether a formula is true on an item, from the encoder's per-position top-k, and the evidence for it;
- `grammar`: formulas as token sequences (`Vocab`, `encode`, `decode`) and the grammar state whose masks let a
  policy write only formulas that fit the limits and, given what fired, are true on the item.

docs/formulas.md describes the grammar, the truth definition and this API.
"""
from pcdrl.explanations.config import FormulaConfig, fits, violations
from pcdrl.explanations.formula import (OPERATORS, And, Formula, FormulaError, Literal, Not, Or, canonical, concepts,
                                        depth, evaluate, operators_used, size, to_id_text, to_text)
from pcdrl.explanations.grammar import GrammarState, Vocab
from pcdrl.explanations.parse import parse
from pcdrl.explanations.truth import (Closest, Evidence, LiteralEvidence, evidence, evidence_from_pre_acts, fired,
                                      fired_batch, holds, holds_each, is_true, is_true_batch, literal_evidence,
                                      signed_literals)

__all__ = [
    "OPERATORS", "And", "Closest", "Evidence", "Formula", "FormulaConfig", "FormulaError", "GrammarState", "Literal",
    "LiteralEvidence", "Not", "Or", "Vocab", "canonical", "concepts", "depth", "evaluate", "evidence", "evidence_from_pre_acts", "fired",
    "fired_batch", "fits", "holds", "holds_each", "is_true", "is_true_batch", "literal_evidence", "operators_used",
    "parse", "signed_literals", "size", "to_id_text", "to_text", "violations",
]
