"""State that is not a Keras variable, saved with a model's weights.

Keras saves a layer's variables by position (``"0"``, ``"1"``, ...). A
keras_dbn model also keeps state that training depends on outside them:
the position of its random-number stream (a `keras.random.SeedGenerator`,
which Keras does not save) and the counters that seed each `fit` call's
shuffling. Saved beside the variables under their own names, they make a
loaded model continue exactly as the saved one would have; files written
without them still load. `save` checks the config before Keras opens the
file.
"""

import numpy as np


class ExtraStateMixin:
    """Adds named entries to `save_own_variables` / `load_own_variables`.

    By default the position of the model's ``seed_generator`` (if it has
    one) is saved. A subclass (listed before ``keras.Model``) adds entries
    by extending ``_extra_state()``, returning ``{name: array}``, and
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
        generator = getattr(self, "seed_generator", None)
        if generator is None:
            return {}
        return {"seed_generator_state": np.array(generator.state.numpy())}

    def _load_extra_state(self, values):
        generator = getattr(self, "seed_generator", None)
        if generator is not None and "seed_generator_state" in values:
            state = generator.state
            state.assign(np.asarray(values["seed_generator_state"], dtype=state.dtype))

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
        extra = {key: np.asarray(store[key]) for key in keys if key in names}
        if extra:
            store = {key: store[key] for key in keys if key not in names}
        super().load_own_variables(store)
        self._load_extra_state(extra)
