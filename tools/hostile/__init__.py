"""The hostile-input suite of tools/hostile_inputs.py (issue 10), split into modules: `harness` (cases,
running and judging them, the summary), the cases in `model_cases`, `analysis_cases` and `system_cases`,
and `categories` (CATEGORIES and all_cases)."""
