"""Operations over a configuration: local run, plan, history, validate (no click)."""
