"""JUnit XML for the gate's verdict: one testcase per task that regressed, for any CI's test report."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from ratchet.gates.policy import Verdict
from ratchet.gates.statistics import ClassifiedTasks


def write_junit(path: Path, classified: ClassifiedTasks, verdict: Verdict) -> None:
    """A suite `ratchet-gate`: a failing testcase per confirmed regression, a skipped one per
    undecided task (it leans towards a regression neither confirmed nor cleared) and per other
    unconfirmed regression, and a `verdict` testcase that fails when the gate rejects or cannot
    decide (inconclusive)."""
    looked = [row for row in classified.rows() if row.flip in ("regression", "unconfirmed_regression") or row.undecided]
    failed = verdict.decision in ("reject", "inconclusive")
    suite = ET.Element(
        "testsuite",
        name="ratchet-gate",
        tests=str(len(looked) + 1),
        failures=str(classified.count("regression") + failed),
        skipped=str(len(looked) - classified.count("regression")),
        errors="0",
    )
    for row in looked:
        case = ET.SubElement(suite, "testcase", classname="ratchet.gate.regressions", name=str(row.task_id))
        counts = (
            f"baseline passed {row.b_pass}/{row.b_n}, candidate {row.c_pass}/{row.c_n}, "
            f"one-sided Fisher p = {row.p_regression:.4g}"
        )
        if row.flip == "regression":
            ET.SubElement(case, "failure", message=f"regression: {counts}", type="regression").text = counts
        elif row.undecided:
            bound = f"; the fall of its pass rate may be up to {row.upper_drop:.2f} (margin {row.margin:.2f})"
            ET.SubElement(case, "skipped", message=f"undecided: {counts}{bound}")
        else:
            ET.SubElement(case, "skipped", message=f"unconfirmed regression: {counts}")
    verdict_case = ET.SubElement(suite, "testcase", classname="ratchet.gate", name="verdict")
    if failed:
        ET.SubElement(
            verdict_case, "failure", message="; ".join(verdict.reasons), type=verdict.decision
        ).text = verdict.explanation
    ET.SubElement(verdict_case, "system-out").text = verdict.explanation
    root = ET.Element("testsuites", name="ratchet")
    root.append(suite)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
