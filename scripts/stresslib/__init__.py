"""The swap-under-load stress harness (issue 14): scripts/swap-stress and its CI test."""
