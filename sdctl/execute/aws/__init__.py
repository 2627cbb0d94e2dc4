"""Executors that call AWS. Short and boring: the decisions are made by the builders."""
