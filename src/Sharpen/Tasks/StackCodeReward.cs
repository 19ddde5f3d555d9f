namespace Sharpen.Tasks;

/// <summary>How <see cref="StackCodeTask"/> turns a program's test results into <see cref="Verdict.Reward"/>.</summary>
public enum StackCodeReward
{
    /// <summary>1 when every generated test passes, else 0 (plus the format reward): PLUM's test-judged correctness.</summary>
    Tests,
    /// <summary>Correctness and runtime together, ACECode's shape: −1 for text that is not a program, −0.5 + 0.5·(passed/tests)
    /// for a program that fails a test, 0.5 + 0.5·min(E_ref / E, 1) when all pass, with E the interpreter steps summed over the
    /// tests and E_ref those of the reference program.</summary>
    Runtime,
}
