"""The report writers refuse any key that would leave the report location (issue 12, defence in
depth: the command line already refuses group names and run ids that do not fit)."""

from __future__ import annotations

import pytest

from nightcopy.aws.s3_reports import S3ReportWriter
from nightcopy.engine.invocation_report import FileReportWriter, report_key, write_report
from nightcopy.errors import NightcopyError

ESCAPING_KEYS = ["../x.json", "r/../../x.json", "/etc/x.json", "r//x.json", "r/./x.json",
                 "r\\..\\x.json", ""]


@pytest.mark.parametrize("key", ESCAPING_KEYS)
def test_file_writer_refuses_keys_that_leave_its_directory(tmp_path, key):
    inside = tmp_path / "reports"
    with pytest.raises(NightcopyError, match="report was not written"):
        FileReportWriter(inside).write(key, "{}")
    assert list(tmp_path.rglob("*.json")) == []


def test_file_writer_refuses_a_symlink_out_of_its_directory(tmp_path):
    inside, outside = tmp_path / "reports", tmp_path / "elsewhere"
    inside.mkdir()
    outside.mkdir()
    (inside / "run1").symlink_to(outside)
    with pytest.raises(NightcopyError, match="leads outside"):
        FileReportWriter(inside).write("run1/g1.json", "{}")
    assert list(outside.iterdir()) == []


def test_file_writer_still_writes_ordinary_keys(tmp_path):
    where = FileReportWriter(tmp_path).write("nightly-2026-12-03-r2/sales_eu-2.json", "{}")
    assert where == str(tmp_path / "nightly-2026-12-03-r2" / "sales_eu-2.json")


@pytest.mark.parametrize("key", ESCAPING_KEYS)
def test_s3_writer_refuses_keys_that_leave_its_prefix_before_calling_aws(key):
    # No moto and no credentials: a refused key never reaches boto3.
    with pytest.raises(NightcopyError, match="would leave the report location"):
        S3ReportWriter("bucket", "reports").write(key, "{}")


@pytest.mark.parametrize(("run_id", "group"), [("../x", "g1"), ("r1", "../../x"), ("r1", "a/b"),
                                               ("", "g1")])
def test_report_key_refuses_names_that_do_not_fit(tmp_path, run_id, group):
    with pytest.raises(NightcopyError, match="must be 1 to 80 letters"):
        report_key(run_id, group)
    with pytest.raises(NightcopyError):
        write_report(FileReportWriter(tmp_path / "r"), run_id, group, {"status": "succeeded"})
    assert list(tmp_path.rglob("*.json")) == []
