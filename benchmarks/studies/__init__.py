"""Studies: a cost measured once for a decision (docs/performance.md, docs/decisions.md cite each,
with its figures and its command), kept so that it can be measured again."""
