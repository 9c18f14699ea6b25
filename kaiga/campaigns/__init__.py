"""Campaigns: one subject in every scene, weather and style — a plan's cells made, resumed, reviewed and exported
(docs/CAMPAIGNS.md). `plan` reads a plan and lists its cells; `runner` makes them as jobs of the durable queue;
`sheets` draws the contact sheets."""
