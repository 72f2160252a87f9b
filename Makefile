# make train: create .venv if needed, install, train the MLP on FashionMNIST (ARGS adds flags).
# make test:  create .venv if needed, install, run the whole test suite.
# make mutation: mutation testing of utils/ and trainer.py with mutmut: about 4,500 mutants at
#   0.1-0.2 a second on 2 cores, so hours; MUTANTS='utils.meter.*' runs the mutants it names.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=
MUTANTS ?=

.PHONY: train test lint format mutation

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

train: $(STAMP)
	$(BIN)/python trainer_vanilla.py --model_type Vanilla --data_type FashionMNIST \
		--output_dir ./Results/Vanilla/ --data_dir ./Dataset $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest

# The mutated copy lives in mutants/, so the real data is named from here.
mutation: $(STAMP)
	$(BIN)/python -m pip install --quiet mutmut==3.8.1
	TEMPLATE_DATA_DIR=$${TEMPLATE_DATA_DIR:-$(CURDIR)/../shared/data} $(BIN)/mutmut run --max-children 2 $(MUTANTS)
	$(BIN)/mutmut results

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .
