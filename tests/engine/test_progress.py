"""table_progress: a long COPY reports its bytes every `progress_every` seconds (30 s in the
worker), so `nightcopy run` and CloudWatch show it is alive. The interval is shortened here by
wrapping the engine's stream() in-process (the engine is a library)."""

from __future__ import annotations

import io
import json

from nightcopy.engine import copy_stream
from nightcopy.engine.events import EventWriter
from nightcopy.engine.invocation import CopyOptions, copy_tables


def test_a_long_copy_reports_progress_until_it_is_copied(dbs, monkeypatch):
    dbs.source.execute("CREATE TABLE public.big (id bigint, pad text);"
                       "INSERT INTO public.big SELECT g, repeat(md5(g::text), 4) FROM "
                       "generate_series(1, 400000) g")
    real_stream = copy_stream.stream

    def every_20ms(source, target, copy_out, copy_in, progress=None, progress_every=30.0):
        assert progress_every == 30.0  # the worker's interval
        return real_stream(source, target, copy_out, copy_in, progress, 0.02)

    monkeypatch.setattr(copy_stream, "stream", every_20ms)
    out = io.StringIO()
    result = copy_tables(CopyOptions(dbs.source.dsn, dbs.target.dsn, "public.big", jobs=1,
                                     run_id="progress"),
                         EventWriter("progress", None, out=out, err=io.StringIO()))
    assert result.ok
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    kinds = [e["event"] for e in events]
    progress = [e for e in events if e["event"] == "table_progress"]
    assert len(progress) >= 2, kinds
    assert all(e["table"] == "public.big" and e["run_id"] == "progress" for e in progress)
    sizes = [e["bytes"] for e in progress]
    assert sizes == sorted(sizes) and sizes[0] > 0
    copied = next(e for e in events if e["event"] == "table_copied")
    assert sizes[-1] <= copied["bytes"]
    # Between the table's start and its end, never after.
    assert kinds.index("table_started") < kinds.index("table_progress")
    assert max(i for i, k in enumerate(kinds) if k == "table_progress") < kinds.index("table_copied")
