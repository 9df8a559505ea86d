"""Evaluation helpers: HumanEval checks in the sandbox (``humaneval_check``) and the harness (``humaneval``).

Nothing is imported here, so ``import wizardcoder_integrations.eval`` stays free of optional packages.
"""
