"""`nightcopy run` and the shrink guard (issue 17): a per-table threshold from nightcopy.toml
reaches the worker, a refusal fails the night, and `run --allow-shrink` passes a purge."""

from __future__ import annotations

import json


def test_a_refused_table_fails_the_night_and_allow_shrink_passes_it(nc, dbs, tmp_path):
    dbs.source.execute("CREATE TABLE public.orders (id int PRIMARY KEY);"
                       "INSERT INTO public.orders SELECT generate_series(1, 2000)")
    cfg = tmp_path / "nightcopy.toml"
    cfg.write_text(f"source_dsn = {json.dumps(dbs.source.dsn)}\n"
                   f"target_dsn = {json.dumps(dbs.target.dsn)}\n"
                   '[[groups]]\nname = "g1"\n'
                   'tables = [{ table = "public.orders", shrink_guard = 20 }]\n')
    assert nc("run", "--config", str(cfg), "--run-id", "night-1").exit_code == 0
    dbs.source.execute("DELETE FROM public.orders WHERE id > 1400")  # -30 %: over this table's 20
    refused = nc("run", "--config", str(cfg), "--run-id", "night-2")
    assert refused.exit_code == 1, refused.text
    assert ("public.orders: the source has 1,400 rows, the reporting copy 2,000 (-30.0 %); kept "
            "last night's copy") in refused.stdout
    assert dbs.target.scalar("SELECT count(*) FROM public.orders") == 2000
    allowed = nc("run", "--config", str(cfg), "--run-id", "night-3", "--allow-shrink",
                 "public.orders")
    assert allowed.exit_code == 0, allowed.text
    assert dbs.target.scalar("SELECT count(*) FROM public.orders") == 1400
