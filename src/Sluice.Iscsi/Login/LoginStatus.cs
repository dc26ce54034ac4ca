namespace Sluice.Iscsi.Login;

/// <summary>
/// Login Response Status-Class and Status-Detail, as one 16-bit code (class in the high byte),
/// RFC 7143 §11.13.5.
/// </summary>
public static class LoginStatus
{
    /// <summary>0x00 Success: login is proceeding OK.</summary>
    public const byte ClassSuccess = 0x00;
    /// <summary>0x01 Redirection.</summary>
    public const byte ClassRedirection = 0x01;
    /// <summary>0x02 Initiator Error (not a format error).</summary>
    public const byte ClassInitiatorError = 0x02;
    /// <summary>0x03 Target Error.</summary>
    public const byte ClassTargetError = 0x03;

    /// <summary>0x0000 Success.</summary>
    public const ushort Success = 0x0000;
    /// <summary>0x0101 Target moved temporarily.</summary>
    public const ushort TargetMovedTemporarily = 0x0101;
    /// <summary>0x0102 Target moved permanently.</summary>
    public const ushort TargetMovedPermanently = 0x0102;
    /// <summary>0x0200 Initiator error: miscellaneous iSCSI initiator errors.</summary>
    public const ushort InitiatorError = 0x0200;
    /// <summary>0x0201 Authentication failure.</summary>
    public const ushort AuthenticationFailure = 0x0201;
    /// <summary>0x0202 Authorization failure: the initiator is not allowed access to the target.</summary>
    public const ushort AuthorizationFailure = 0x0202;
    /// <summary>0x0203 Not found: the requested target does not exist.</summary>
    public const ushort NotFound = 0x0203;
    /// <summary>0x0204 Target removed.</summary>
    public const ushort TargetRemoved = 0x0204;
    /// <summary>0x0205 Unsupported version.</summary>
    public const ushort UnsupportedVersion = 0x0205;
    /// <summary>0x0206 Too many connections.</summary>
    public const ushort TooManyConnections = 0x0206;
    /// <summary>0x0207 Missing parameter (e.g. InitiatorName or TargetName).</summary>
    public const ushort MissingParameter = 0x0207;
    /// <summary>0x0208 Can't include in session.</summary>
    public const ushort CannotIncludeInSession = 0x0208;
    /// <summary>0x0209 Session type not supported.</summary>
    public const ushort SessionTypeNotSupported = 0x0209;
    /// <summary>0x020A Session does not exist.</summary>
    public const ushort SessionDoesNotExist = 0x020A;
    /// <summary>0x020B Invalid request type during login.</summary>
    public const ushort InvalidDuringLogin = 0x020B;
    /// <summary>0x0300 Target error.</summary>
    public const ushort TargetError = 0x0300;
    /// <summary>0x0301 Service unavailable.</summary>
    public const ushort ServiceUnavailable = 0x0301;
    /// <summary>0x0302 Out of resources.</summary>
    public const ushort OutOfResources = 0x0302;

    /// <summary>Status-Class of a code.</summary>
    public static byte ClassOf(ushort status) => (byte)(status >> 8);

    /// <summary>Status-Detail of a code.</summary>
    public static byte DetailOf(ushort status) => (byte)status;
}

/// <summary>Login stage codes carried in CSG/NSG (RFC 7143 §11.12.3).</summary>
public static class LoginStage
{
    /// <summary>SecurityNegotiation.</summary>
    public const int SecurityNegotiation = 0;
    /// <summary>LoginOperationalNegotiation.</summary>
    public const int OperationalNegotiation = 1;
    /// <summary>FullFeaturePhase.</summary>
    public const int FullFeaturePhase = 3;
}
