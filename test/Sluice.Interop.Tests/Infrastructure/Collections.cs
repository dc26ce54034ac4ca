[assembly: AssemblyTrait("Category", "Interop")]

namespace Sluice.Interop.Tests.Infrastructure;

/// <summary>
/// One server per target kind, shared by every test class of that kind. Classes in a collection
/// run one after another (they share the server); the two kinds run in parallel.
/// </summary>
[CollectionDefinition(Name)]
public sealed class TgtCollection : ICollectionFixture<TgtTargetFixture>
{
    public const string Name = "tgt target";
}

[CollectionDefinition(Name)]
public sealed class SluiceCollection : ICollectionFixture<SluiceTargetFixture>
{
    public const string Name = "sluice target";
}
