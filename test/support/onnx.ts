// A tiny ONNX model written byte by byte (protobuf wire format), so a test can give Chorus a real
// model file through TURN_DETECTOR_MODEL without shipping one: onnxruntime-node loads and runs it
// like any other. The graph follows the end-of-turn contract of src/transcribe/turn-detector.ts:
//
//   input  "audio"        float32 [1, n]
//   output "probability"  = ReduceMax(audio × 0) + p   (a scalar: p, whatever the audio)
//
// Only what this graph needs of ModelProto is encoded (field numbers from onnx/onnx.proto).

const varint = (n: number): number[] => {
  const out: number[] = [];
  let v = n;
  do {
    let byte = v % 128;
    v = Math.floor(v / 128);
    if (v > 0) byte |= 0x80;
    out.push(byte);
  } while (v > 0);
  return out;
};

/** A field: varint (number), length-delimited (bytes or string), or a repeated group of them. */
const field = (no: number, value: number | string | number[]): number[] => {
  if (typeof value === 'number') return [...varint(no << 3), ...varint(value)];
  const bytes = typeof value === 'string' ? [...Buffer.from(value, 'utf8')] : value;
  return [...varint((no << 3) | 2), ...varint(bytes.length), ...bytes];
};

const floats = (values: number[]): number[] => [...Buffer.from(Float32Array.from(values).buffer)];

/** TensorProto: a float32 tensor (dims [] = a scalar). */
const tensor = (name: string, values: number[], dims: number[] = []) => [...dims.flatMap((d) => field(1, d)), ...field(2, 1), ...field(4, floats(values)), ...field(8, name)];

/** ValueInfoProto of a float32 tensor; dims: a number, a symbolic name, or none for a scalar. */
const valueInfo = (name: string, dims: Array<number | string>) => {
  const shape = dims.flatMap((d) => field(1, typeof d === 'number' ? field(1, d) : field(2, d)));
  return [...field(1, name), ...field(2, field(1, [...field(1, 1), ...field(2, shape)]))];
};

const node = (op: string, inputs: string[], outputs: string[], attributes: number[][] = []) => [
  ...inputs.flatMap((i) => field(1, i)),
  ...outputs.flatMap((o) => field(2, o)),
  ...field(4, op),
  ...attributes.flatMap((a) => field(5, a)),
];

/** An int attribute (AttributeProto, type INT = 2). */
const intAttribute = (name: string, value: number) => [...field(1, name), ...field(3, value), ...field(20, 2)];

/** The bytes of a model whose output is always `probability`. */
export function constantTurnModel(probability: number): Buffer {
  const graph = [
    ...field(1, node('Mul', ['audio', 'zero'], ['silenced'])),
    ...field(1, node('ReduceMax', ['silenced'], ['nothing'], [intAttribute('keepdims', 0)])),
    ...field(1, node('Add', ['nothing', 'p'], ['probability'])),
    ...field(2, 'constant-turn'),
    ...field(5, tensor('zero', [0])),
    ...field(5, tensor('p', [probability])),
    ...field(11, valueInfo('audio', [1, 'samples'])),
    ...field(12, valueInfo('probability', [])),
  ];
  const model = [...field(1, 7), ...field(2, 'chorus-test'), ...field(7, graph), ...field(8, [...field(1, ''), ...field(2, 13)])];
  return Buffer.from(model);
}
