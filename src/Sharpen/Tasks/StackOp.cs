namespace Sharpen.Tasks;

/// <summary>The operations of the stack language <see cref="StackMachine"/> runs.</summary>
public enum StackOp : byte
{
    /// <summary>Push a literal (<see cref="StackInstruction.Value"/>).</summary>
    Push,
    /// <summary><c>x</c>: push the input.</summary>
    Input,
    /// <summary><c>+</c>: a b → a+b.</summary>
    Add,
    /// <summary><c>-</c>: a b → a−b.</summary>
    Sub,
    /// <summary><c>*</c>: a b → a·b.</summary>
    Mul,
    /// <summary><c>/</c>: a b → a/b, truncated toward zero; b = 0 is an error.</summary>
    Div,
    /// <summary><c>%</c>: a b → the remainder of a/b (sign of a); b = 0 is an error.</summary>
    Mod,
    /// <summary><c>dup</c>: a → a a.</summary>
    Dup,
    /// <summary><c>swap</c>: a b → b a.</summary>
    Swap,
    /// <summary><c>drop</c>: a → (nothing).</summary>
    Drop,
    /// <summary><c>over</c>: a b → a b a.</summary>
    Over,
    /// <summary><c>[</c>: pops n ≥ 0 and runs the block up to the matching <c>]</c> n times.</summary>
    LoopStart,
    /// <summary><c>]</c>: end of a block; jumps back while repetitions remain.</summary>
    LoopEnd,
}
