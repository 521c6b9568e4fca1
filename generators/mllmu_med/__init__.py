"""MLLMU-Med: private-record and factual-error injections for unlearning evaluation."""
