"""From the models to the core's spec: today's planning, the blast radius, validation."""
