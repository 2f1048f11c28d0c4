"""JUnit XML for the gate's verdict: one testcase per task that regressed, for any CI's test report."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from ratchet.gates.policy import Verdict
from ratchet.gates.statistics import ClassifiedTasks


def write_junit(path: Path, classified: ClassifiedTasks, verdict: Verdict) -> None:
    """A suite `ratchet-gate`: a failing testcase per confirmed regression, a skipped one per
    unconfirmed regression, and a `verdict` testcase that fails when the gate rejects."""
    looked = [row for row in classified.rows() if row.flip in ("regression", "unconfirmed_regression")]
    suite = ET.Element(
        "testsuite",
        name="ratchet-gate",
        tests=str(len(looked) + 1),
        failures=str(classified.count("regression") + (verdict.decision == "reject")),
        skipped=str(classified.count("unconfirmed_regression")),
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
        else:
            ET.SubElement(case, "skipped", message=f"unconfirmed regression: {counts}")
    verdict_case = ET.SubElement(suite, "testcase", classname="ratchet.gate", name="verdict")
    if verdict.decision == "reject":
        ET.SubElement(
            verdict_case, "failure", message="; ".join(verdict.reasons), type="reject"
        ).text = verdict.explanation
    ET.SubElement(verdict_case, "system-out").text = verdict.explanation
    root = ET.Element("testsuites", name="ratchet")
    root.append(suite)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
