"""The ConvLSTM encoder-forecaster network (Shi et al. 2015, "Convolutional LSTM Network: A
Machine Learning Approach for Precipitation Nowcasting", https://arxiv.org/abs/1506.04214).

Frames are cut into `patch_size` x `patch_size` patches stacked as channels (section 4.1:
64x64 Moving MNIST frames become 16x16x16 tensors). An encoder of stacked ConvLSTMs reads the
input frames; a forecaster of as many stacked ConvLSTMs starts from the encoder's last states
(section 3.2) and, with no input of its own, unrolls one step per future frame; a 1x1
convolution of all its layers' hidden states, put back into frame layout, is the frame's
logits (Bernoulli per pixel, trained by cross-entropy as in section 4.1).

The recurrence is unrolled over the fixed frame counts (one `ConvLSTMCell` per layer, called
at every step, shares its weights), so the graph converts to TFLite builtin ops.
"""

import keras
from keras import layers

from kerasgen.layers import (ConvLSTMCell, FrameAt, PixelShuffle, PixelUnshuffle, StackFrames,
                             ZeroState)


def build_convlstm_forecaster(frame_size=64, channels=1, num_input_frames=10,
                              num_output_frames=10, patch_size=4, num_filters=64, num_layers=2,
                              kernel_size=3, seed=None, name="convlstm_forecaster"):
    """Frames `[N, num_input_frames, frame_size, frame_size, channels]` in [0, 1] -> logits of
    the next `[N, num_output_frames, frame_size, frame_size, channels]`.

    Args:
        frame_size: int. Frame height and width, a multiple of `patch_size`. Defaults to 64.
        channels: int. Defaults to 1.
        num_input_frames, num_output_frames: int. Frames read and forecast. Default to 10
            and 10 (the paper's Moving MNIST setting).
        patch_size: int. Side of the patches stacked as channels. Defaults to 4 (the paper).
        num_filters: int. Hidden channels of every ConvLSTM layer. Defaults to 64.
        num_layers: int. Stacked ConvLSTM layers in the encoder and in the forecaster.
            Defaults to 2.
        kernel_size: int. Side of the state-to-state and input-to-state kernels. Defaults to 3
            (the paper's best Moving MNIST model has 5x5; 3x3 costs 2.8x less).
        seed: int. Seeds the initial weights.
        name: str. Defaults to `"convlstm_forecaster"`.
    """
    for label, value in (("frame_size", frame_size), ("num_input_frames", num_input_frames),
                         ("num_output_frames", num_output_frames), ("patch_size", patch_size),
                         ("num_filters", num_filters), ("num_layers", num_layers),
                         ("kernel_size", kernel_size)):
        if int(value) < 1:
            raise ValueError(f"{label} must be at least 1, got {value}.")
    if frame_size % patch_size:
        raise ValueError(f"frame_size {frame_size} is not a multiple of patch_size "
                         f"{patch_size}; pick sizes that divide.")

    def initializer(index):
        return keras.initializers.GlorotUniform(None if seed is None else seed + index)

    def cells(role, offset):
        return [ConvLSTMCell(num_filters, kernel_size, kernel_initializer=initializer(offset + i),
                             name=f"{role}{i + 1}") for i in range(num_layers)]

    frames = keras.Input((num_input_frames, frame_size, frame_size, channels), name="frames")
    encoder, forecaster = cells("encoder", 0), cells("forecaster", num_layers)
    to_patches = PixelUnshuffle(patch_size, name="to_patches")
    first = to_patches(FrameAt(0, name="frame1")(frames))
    zeros = ZeroState(num_filters, name="initial_state")(first)
    states = [[zeros, zeros] for _ in range(num_layers)]
    # 1. Encode: every input frame passes up the stack; each layer carries its own state.
    for step in range(num_input_frames):
        x = first if step == 0 else to_patches(FrameAt(step, name=f"frame{step + 1}")(frames))
        for layer, cell in enumerate(encoder):
            states[layer] = cell([x, *states[layer]])
            x = states[layer][0]
    # 2. Forecast from the encoder's last states, with no input (section 3.2); 3. predict
    # every frame from the concatenated hidden states of all forecaster layers.
    no_input = ZeroState(patch_size * patch_size * channels, name="no_input")(first)
    predict = layers.Conv2D(patch_size * patch_size * channels, 1, name="predict",
                            kernel_initializer=initializer(2 * num_layers))
    to_frame = PixelShuffle(patch_size, name="to_frame")
    forecasts = []
    for step in range(num_output_frames):
        x, hidden = no_input, []
        for layer, cell in enumerate(forecaster):
            states[layer] = cell([x, *states[layer]])
            x = states[layer][0]
            hidden.append(x)
        joined = hidden[0] if num_layers == 1 else layers.Concatenate(
            name=f"forecast{step + 1}_states")(hidden)
        forecasts.append(to_frame(predict(joined)))
    return keras.Model(frames, StackFrames(name="forecast")(forecasts), name=name)
