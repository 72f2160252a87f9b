"""Small single-purpose helpers shared by the trainers and evaluators; each module stands alone."""
