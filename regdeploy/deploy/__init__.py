"""Deploying one host: units, render, facts, plan, diffs, apply, health."""
