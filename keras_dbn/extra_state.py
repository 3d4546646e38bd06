"""State that is not a Keras variable, saved with a model's weights.

Keras saves a layer's variables by position (``"0"``, ``"1"``, ...). A
keras_dbn model also keeps state that training depends on outside them:
the position of its random-number stream (a `keras.random.SeedGenerator`,
which Keras does not save), those of the layers inside it (e.g. the
Dropout layers of a classifier that a trainer holds; Keras does not save
them either) and the counters that seed each `fit` call's shuffling.
Saved beside the variables under their own names, they make a loaded
model continue exactly as the saved one would have; files written without
them still load. `save` checks the config before Keras opens the file.
"""

import numpy as np

#: Start of the names of the inner layers' SeedGenerator states.
_LAYER_SEED_PREFIX = "seed_generator_state:"


def _inner_seed_generators(model):
    """The SeedGenerators of the layers inside ``model``, by stable names.

    The layers are walked depth first in Keras' tracking order (that of a
    model rebuilt from the same config). A layer's entry is named by the
    names of the layers on its path, e.g.
    ``"seed_generator_state:sequential.dropout:0"`` for the first generator
    of layer ``dropout`` of sub-model ``sequential``; a name met twice gets
    ``"#1"``, ``"#2"``, ... appended. A layer reached twice counts once.
    Inner `ExtraStateMixin` models (a DBN's RBMs) save their own, so the
    walk does not enter them; ``model``'s own generators are not included.

    Args:
        model: a Keras layer or model.

    Returns:
        A dict ``{name: keras.random.SeedGenerator}``, in walk order.
    """
    found, seen = {}, set()

    def walk(layer, path):
        for child in layer._layers:
            if id(child) in seen or isinstance(child, ExtraStateMixin):
                continue
            seen.add(id(child))
            child_path = f"{path}.{child.name}" if path else child.name
            for index, generator in enumerate(child._seed_generators):
                name = base = f"{_LAYER_SEED_PREFIX}{child_path}:{index}"
                repeat = 0
                while name in found:
                    repeat += 1
                    name = f"{base}#{repeat}"
                found[name] = generator
            walk(child, child_path)

    walk(model, "")
    return found


class ExtraStateMixin:
    """Adds named entries to `save_own_variables` / `load_own_variables`.

    By default the positions of the model's ``seed_generator`` (if it has
    one) and of the SeedGenerators of the layers inside it (such as
    Dropout layers; named by `_inner_seed_generators`) are saved. A subclass
    (listed before ``keras.Model``) adds entries by extending
    ``_extra_state()``, returning ``{name: array}``, and
    ``_load_extra_state(values)``, receiving the entries found in the file
    (none for files saved before they existed).

    Example:

    ```python
    class Counter(ExtraStateMixin, keras.Model):
        def _extra_state(self):
            return dict(super()._extra_state(), calls=np.asarray(self.calls))

        def _load_extra_state(self, values):
            super()._load_extra_state(values)
            self.calls = int(values.get("calls", 0))
    ```
    """

    def _extra_state(self):
        generators = _inner_seed_generators(self)
        own = getattr(self, "seed_generator", None)
        if own is not None:
            generators = {"seed_generator_state": own, **generators}
        return {name: np.array(generator.state.numpy())
                for name, generator in generators.items()}

    def _load_extra_state(self, values):
        generators = _inner_seed_generators(self)
        own = getattr(self, "seed_generator", None)
        if own is not None:
            generators["seed_generator_state"] = own
        for name, generator in generators.items():
            if name in values:  # absent from files saved before it was
                state = generator.state
                state.assign(np.asarray(values[name], dtype=state.dtype))

    def save(self, filepath, *args, **kwargs):
        """`keras.Model.save`, once the config is known to serialise.

        Keras opens (and so empties) the file before it asks for the config:
        a config that fails (e.g. an RBM's unregistered custom unit type)
        would leave an empty file where an earlier save may have been.
        Keras' legacy HDF5 format cannot hold these models at all (it
        failed half-way, leaving a partial file), so ``.h5`` paths are
        refused first.

        Args:
            filepath, *args, **kwargs: as for `keras.Model.save`.

        Raises:
            ValueError: for an ``.h5`` or ``.hdf5`` path.

        Example:

        >>> rbm.save("rbm.keras")
        """
        if str(filepath).lower().endswith((".h5", ".hdf5")):
            raise ValueError(
                f"{type(self).__name__} models save in Keras' .keras format; the legacy "
                f"HDF5 format cannot hold them (got {str(filepath)!r}). Use a .keras path, "
                "or save_weights('....weights.h5') for the weights alone."
            )
        self.get_config()
        return super().save(filepath, *args, **kwargs)

    def save_own_variables(self, store):
        """Saves the variables, then the extra state under its names.

        Args:
            store: Keras' store of this object's saved values.
        """
        super().save_own_variables(store)
        for name, value in self._extra_state().items():
            store[name] = np.asarray(value)

    def load_own_variables(self, store):
        """Loads the variables, then whatever extra state the file holds.

        Args:
            store: Keras' store of this object's saved values.
        """
        names = set(self._extra_state())
        keys = list(store.keys())
        # Inner layers' entries this model does not know of (none, for a
        # model rebuilt from its saved config) are left out, not loaded
        # as variables.
        extra = {key: np.asarray(store[key]) for key in keys
                 if key in names or key.startswith(_LAYER_SEED_PREFIX)}
        if extra:
            store = {key: store[key] for key in keys if key not in extra}
        super().load_own_variables(store)
        self._load_extra_state(extra)
