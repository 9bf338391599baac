"""Services `fglab up` and the tests start themselves when none is configured."""
