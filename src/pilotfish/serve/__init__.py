"""What serves: `pilotfish serve` (an OpenAI-compatible and a native HTTP API, and a web chat page)."""
