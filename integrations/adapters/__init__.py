"""Adapters that put real implementations (verl, TRL, ms-swift) behind the names the
conformance suite calls (tests/conformance_adapter.py), one module per implementation.

Each module imports its peer at the top, so it is importable only in the environment
integrations/run_oracle.sh builds for it; nothing in the project imports these modules.
Results and the differences found: integrations/adapters/README.md.
"""
