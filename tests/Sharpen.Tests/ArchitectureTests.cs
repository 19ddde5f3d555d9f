using System.Reflection;
using System.Reflection.Emit;
using Sharpen.Evaluation;
using Sharpen.Training.Rl;

namespace Sharpen.Tests;

/// <summary>
/// Dependencies run one way (docs/architecture.md): every type of the Sharpen assembly is read by reflection — its base
/// type, interfaces, fields, properties, method signatures and the member and type tokens of every method body's IL
/// (so lambdas, iterators and async state machines count as their declaring type) — and a reference from a room to one
/// above it fails the test, naming both types.
/// </summary>
public class ArchitectureTests
{
    // Rank of each room (namespace under Sharpen); a type may use rooms of lower or equal rank only.
    static readonly Dictionary<string, int> Rank = new()
    {
        ["Torch"] = 0, ["Models"] = 1, ["Checkpoints"] = 2, ["Tokenizers"] = 2, ["Data"] = 3, ["Tasks"] = 3,
        ["Generation"] = 4, ["Environments"] = 5, ["Export"] = 5, ["Rewards"] = 6, ["Algorithms"] = 7, ["Search"] = 8,
        ["Evaluation"] = 9, ["Training"] = 10, ["Recipes"] = 11,
    };

    static int? RoomRank(string? ns)
    {
        if (ns is null || !ns.StartsWith("Sharpen.", StringComparison.Ordinal)) return null;
        var room = ns["Sharpen.".Length..].Split('.')[0];
        return Rank.TryGetValue(room, out var r) ? r : null;
    }

    static readonly Dictionary<short, OperandType> Operands = typeof(OpCodes).GetFields(BindingFlags.Public | BindingFlags.Static)
        .Select(f => (OpCode)f.GetValue(null)!).ToDictionary(o => o.Value, o => o.OperandType);

    [Fact]
    public void No_room_references_a_room_above_it()
    {
        var assembly = typeof(Sharpen.Torch.TorchRuntime).Assembly;
        var violations = new SortedSet<string>();
        foreach (var type in assembly.GetTypes())
        {
            var ns = Outer(type).Namespace;
            if (RoomRank(ns) is not { } rank) continue;
            foreach (var used in References(type))
                if (RoomRank(used.Namespace) is { } usedRank && usedRank > rank)
                    violations.Add($"{Outer(type).FullName} ({ns}) uses {used.FullName} ({used.Namespace})");
        }
        Assert.True(violations.Count == 0, "back-edges:\n" + string.Join("\n", violations));
    }

    [Fact]
    public void No_source_file_imports_a_room_above_its_own()
    {
        // Unused using directives compile to nothing, so reflection cannot see them; they still mislead a reader.
        var root = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(root, "Sharpen.sln"))) root = Path.GetDirectoryName(root) ?? throw new InvalidOperationException("no Sharpen.sln above the test binaries");
        var src = Path.Combine(root, "src", "Sharpen");
        var violations = new List<string>();
        foreach (var file in Directory.EnumerateFiles(src, "*.cs", SearchOption.AllDirectories).Where(f => !f.Contains("/obj/") && !f.Contains("/bin/")))
        {
            var room = Path.GetRelativePath(src, file).Split(Path.DirectorySeparatorChar)[0];
            if (!Rank.TryGetValue(room, out var rank)) continue;
            foreach (var line in File.ReadLines(file))
            {
                var m = System.Text.RegularExpressions.Regex.Match(line, @"^using (?:static )?(Sharpen\.[\w.]+)");
                if (m.Success && RoomRank(m.Groups[1].Value) is { } used && used > rank) violations.Add($"{Path.GetRelativePath(root, file)}: {line.Trim()}");
            }
        }
        Assert.True(violations.Count == 0, "imports of rooms above:\n" + string.Join("\n", violations));
    }

    [Fact]
    public void The_scan_sees_references_inside_method_bodies()
    {
        // A type known to call Evaluator inside a method body (a lambda-free, field-free use) is found.
        var used = References(typeof(Sharpen.Training.Rl.RlTrainer)).Select(t => t.FullName).ToHashSet();
        Assert.Contains("Sharpen.Evaluation.Evaluator", used);
        Assert.Contains("Sharpen.Algorithms.AdvantageEstimators", used);
    }

    static Type Outer(Type t) { while (t.DeclaringType is { } d) t = d; return t; }

    /// <summary>Types <paramref name="type"/> and its nested types refer to, by signature or in IL.</summary>
    static IEnumerable<Type> References(Type type)
    {
        var found = new HashSet<Type>();
        void Add(Type? t)
        {
            if (t is null || t.IsGenericParameter) return;
            if (t.HasElementType) { Add(t.GetElementType()); return; }
            if (!found.Add(t)) return;
            if (t.IsGenericType) foreach (var a in t.GetGenericArguments()) Add(a);
        }
        const BindingFlags all = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;
        foreach (var t in new[] { type }.Concat(type.GetNestedTypes(all).SelectMany(Nested)))
        {
            Add(t.BaseType);
            foreach (var i in t.GetInterfaces()) Add(i);
            foreach (var f in t.GetFields(all)) Add(f.FieldType);
            foreach (var p in t.GetProperties(all)) Add(p.PropertyType);
            foreach (var m in t.GetMethods(all).Cast<MethodBase>().Concat(t.GetConstructors(all)))
            {
                if (m is MethodInfo mi) Add(mi.ReturnType);
                foreach (var p in m.GetParameters()) Add(p.ParameterType);
                foreach (var u in BodyReferences(m)) Add(u);
            }
        }
        return found;
    }

    static IEnumerable<Type> Nested(Type t) =>
        new[] { t }.Concat(t.GetNestedTypes(BindingFlags.Public | BindingFlags.NonPublic).SelectMany(Nested));

    static IEnumerable<Type> BodyReferences(MethodBase m)
    {
        byte[]? il;
        try { il = m.GetMethodBody()?.GetILAsByteArray(); } catch { yield break; }
        if (il is null) yield break;
        var typeArgs = m.DeclaringType is { IsGenericType: true } dt ? dt.GetGenericArguments() : null;
        var methodArgs = m.IsGenericMethod ? m.GetGenericArguments() : null;
        for (int i = 0; i < il.Length;)
        {
            short code = il[i] == 0xFE ? (short)(0xFE00 | il[i + 1]) : il[i];
            i += il[i] == 0xFE ? 2 : 1;
            if (!Operands.TryGetValue(unchecked((short)(code == il[i - 1] ? code : code)), out var operand)) operand = OperandType.InlineNone;
            switch (operand)
            {
                case OperandType.InlineMethod or OperandType.InlineField or OperandType.InlineType or OperandType.InlineTok:
                    int token = BitConverter.ToInt32(il, i);
                    MemberInfo? member = null;
                    try { member = m.Module.ResolveMember(token, typeArgs, methodArgs); } catch { }
                    if (member is Type t) yield return t;
                    else if (member is not null)
                    {
                        if (member.DeclaringType is { } d) yield return d;
                        if (member is MethodInfo mi) { yield return mi.ReturnType; foreach (var p in mi.GetParameters()) yield return p.ParameterType; }
                        if (member is FieldInfo fi) yield return fi.FieldType;
                    }
                    i += 4;
                    break;
                case OperandType.InlineSwitch:
                    i += 4 + 4 * BitConverter.ToInt32(il, i);
                    break;
                case OperandType.InlineI8 or OperandType.InlineR: i += 8; break;
                case OperandType.InlineNone: break;
                case OperandType.ShortInlineBrTarget or OperandType.ShortInlineI or OperandType.ShortInlineVar: i += 1; break;
                case OperandType.InlineVar: i += 2; break;
                default: i += 4; break;
            }
        }
    }
}
