namespace Sharpen.Tasks;

/// <summary>The outcome of one run: the value left on the stack when <c>Ok</c>, else the error code
/// (<see cref="StackMachine"/>'s constants) and a message. <c>Steps</c> counts the instructions executed.</summary>
public sealed record StackRun(bool Ok, long Value, int Steps, string? Error, string? Message);
