"""rcstatus: RingCentral phone presence in Slack."""
