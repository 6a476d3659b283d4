"""Who answers: trained routers (kNN, classifier), their data and metrics, cascades and escalation signals."""
