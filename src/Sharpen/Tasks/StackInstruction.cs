namespace Sharpen.Tasks;

/// <summary>One parsed word: the operation, and the literal (<see cref="StackOp.Push"/>) or the matching bracket's index
/// (<see cref="StackOp.LoopStart"/>, <see cref="StackOp.LoopEnd"/>).</summary>
public readonly record struct StackInstruction(StackOp Op, long Value);
