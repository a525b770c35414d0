"""Teaching aids: the exercise checks that name bugs, gradient and sanity checks, the training
doctor, the exercise grader and the computed sentences of the notebooks."""
