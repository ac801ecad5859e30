"""A training step replayed as one CUDA graph, its hundreds of small kernels launched at once.

On a GPU an SGLD chain is launch-bound: each of its steps is a few dozen small kernels,
each launched from Python. Captured once as a CUDA graph, the whole update (the chains'
run, both energies, the loss and its backward pass) is replayed by one launch. The step
must be a function of tensors that stay where they are (the input buffer, the weights,
the replay buffer's chains) and must not synchronise with the host
(:func:`~sklearn_cebm._core.pcd_step.contrastive_divergence_step` is such a step); its
random draws come from a generator registered with the graph, so every replay draws new
numbers and seeded runs repeat. The optimiser's step stays outside the graph.

See PyTorch's notes on CUDA graphs ("CUDA Graphs" in its CUDA semantics page), whose
whole-network capture this follows: warm-up iterations on a side stream, gradients set to
None before the capture so that the backward pass allocates them from the graph's pool.
"""

import contextlib

import torch

__all__ = ["CapturedStep", "side_stream", "static_key"]


def static_key(x, parameters, static_tensors, generator):
    """What a captured graph depends on: the input's layout and where every tensor it
    reads or writes lives. A graph replays only while this stays the same."""
    pointers = tuple(t.data_ptr() for t in (*parameters, *static_tensors))
    return (tuple(x.shape), x.dtype, x.device, pointers, id(generator))


@contextlib.contextmanager
def side_stream(device):
    """Run the block on a fresh side stream of ``device``, ordered after the current one.

    The warm-up iterations before a capture run so, as PyTorch's notes ask, so that lazy
    initialisations (cuDNN's and cuBLAS's workspaces, autograd's streams) happen outside
    the default stream's history.
    """
    current = torch.cuda.current_stream(device)
    stream = torch.cuda.Stream(device)
    stream.wait_stream(current)
    with torch.cuda.stream(stream):
        yield
    current.wait_stream(stream)


@contextlib.contextmanager
def _autocast_cache_disabled():
    # autocast's cache of cast weights would hold tensors made during the capture; the
    # CUDA graph notes ask for cache_enabled=False, which autocast takes from here.
    enabled = torch.is_autocast_cache_enabled()
    torch.set_autocast_cache_enabled(False)
    try:
        yield
    finally:
        torch.set_autocast_cache_enabled(enabled)


class CapturedStep:
    """``step(x)`` captured as a CUDA graph, to be replayed on new inputs of x's layout.

    Capturing runs nothing: call the object, as for every later input, to run the step.

    Parameters
    ----------
    step : callable
        ``step(x)`` returns a tuple of tensors and accumulates the gradients of
        ``parameters`` (calls ``backward``); it must not synchronise with the host.
    x : torch.Tensor
        An input of the layout every later input will have; copied into the graph's
        static input.
    parameters : list of torch.nn.Parameter
        The weights ``step`` differentiates; their ``.grad`` are set to None for the
        capture, and after each replay point at the graph's gradients.
    generator : torch.Generator
        The CUDA generator ``step`` draws from, registered with the graph.
    static_tensors : list of torch.Tensor, default=()
        Further tensors the step reads or writes in place (the replay buffer's chains), for
        :meth:`matches`.

    Notes
    -----
    A replay overwrites ``.grad`` where eager ``backward`` would add to it; callers zero
    the gradients before every step anyway (skorch does).
    """

    def __init__(self, step, x, parameters, generator, static_tensors=()):
        self.parameters = list(parameters)
        self.key = static_key(x, self.parameters, static_tensors, generator)
        self.input = x.detach().clone()
        self.graph = torch.cuda.CUDAGraph()
        self.graph.register_generator_state(generator)
        for parameter in self.parameters:
            parameter.grad = None
        with _autocast_cache_disabled(), torch.cuda.graph(self.graph):
            self.outputs = step(self.input)
        self.gradients = [(p, p.grad) for p in self.parameters if p.grad is not None]

    def matches(self, x, parameters, static_tensors, generator):
        """Whether the graph still applies to this input and these tensors."""
        return static_key(x, list(parameters), static_tensors, generator) == self.key

    def __call__(self, x):
        """Copy ``x`` into the static input, replay, and return the static outputs.

        The outputs are overwritten by the next replay: read them before.
        """
        self.input.copy_(x)
        self.graph.replay()
        for parameter, gradient in self.gradients:
            parameter.grad = gradient
        return self.outputs
