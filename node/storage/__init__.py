"""RxLedger."""
