"""The seam between the engine and the model: what a model is asked and answers (the
job vocabulary, ``requests``), the plan of a batch's decode rows (``rows``), the Protocols a model
implements (``runner``: ``Runner``, ``Stepper`` and their kin) and the simultaneous agreement
(``agreement``). torch-free plain values; the engine and the model both stand on it and neither
reaches into the other (an import contract)."""
