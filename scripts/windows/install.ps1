<#
.SYNOPSIS
    Installs and loads (or unloads and uninstalls) the portfilter minifilter in a Windows
    test VM.

.DESCRIPTION
    Run in an elevated PowerShell (5.1 or 7) on a machine with test signing on
    (bcdedit /set testsigning on, then reboot). Written for review line by line; it was
    NOT run on Windows by the project's CI (there is no Windows there).

    Install:    .\install.ps1 -PackageDir <folder with portfilter.inf, .sys, .cat>
                [-TrustCertificate <test certificate .cer>]
    Uninstall:  .\install.ps1 -Uninstall

    Install = pnputil /add-driver portfilter.inf /install, then fltmc load portfilter,
    then fltmc filters / fltmc instances. Uninstall = fltmc unload portfilter, then
    pnputil /delete-driver oemNN.inf /uninstall /force for every published copy of
    portfilter.inf. Exits non-zero when a step fails.

.PARAMETER PackageDir
    The driver package: `cargo make` writes it to target\<profile>\portfilter_package.

.PARAMETER TrustCertificate
    A test certificate (.cer) to add to the machine's Trusted Root and Trusted Publishers
    stores first, so that pnputil accepts the test-signed catalog without a prompt
    (for example WDRLocalTestCert.cer from the cargo make package). Only on a test VM.
#>
[CmdletBinding(DefaultParameterSetName = 'Install')]
param(
    [Parameter(ParameterSetName = 'Install', Mandatory = $true)]
    [string] $PackageDir,

    [Parameter(ParameterSetName = 'Install')]
    [string] $TrustCertificate,

    [Parameter(ParameterSetName = 'Uninstall', Mandatory = $true)]
    [switch] $Uninstall
)

Set-StrictMode -Version 3
$ErrorActionPreference = 'Stop'

$ServiceName = 'portfilter'
$InfName = 'portfilter.inf'

function Assert-Elevated {
    $principal = New-Object Security.Principal.WindowsPrincipal(
        [Security.Principal.WindowsIdentity]::GetCurrent())
    if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
        throw 'Run this script in an elevated PowerShell (Run as administrator).'
    }
}

# Runs a native command, echoes it and its output, and returns its exit code.
function Invoke-Native {
    param([string] $File, [string[]] $Arguments)
    # Windows PowerShell 5.1 turns native stderr into terminating errors under 'Stop'.
    $ErrorActionPreference = 'Continue'
    Write-Host ('> {0} {1}' -f $File, ($Arguments -join ' '))
    & $File @Arguments 2>&1 | ForEach-Object { Write-Host "  $_" }
    return $LASTEXITCODE
}

# The published names (oemNN.inf) of every installed copy of portfilter.inf.
function Get-PublishedInf {
    Get-WindowsDriver -Online -All |
        Where-Object { $_.OriginalFileName -like "*\$InfName" } |
        ForEach-Object { $_.Driver }
}

# The output of a native command as one string (stderr included). $ErrorActionPreference is
# 'Continue' here: under the script's 'Stop', Windows PowerShell 5.1 turns the first line a
# redirected native command writes to stderr into a terminating error.
function Get-NativeOutput {
    param([string] $File, [string[]] $Arguments)
    $ErrorActionPreference = 'Continue'
    return (& $File @Arguments 2>&1 | Out-String)
}

function Test-FilterLoaded {
    $ErrorActionPreference = 'Continue'
    $lines = & fltmc.exe filters 2>&1
    return [bool]($lines | Where-Object { $_ -match "^\s*$ServiceName\s" })
}

Assert-Elevated

if ($Uninstall) {
    if (Test-FilterLoaded) {
        if ((Invoke-Native 'fltmc.exe' @('unload', $ServiceName)) -ne 0) {
            throw "fltmc unload $ServiceName failed (a client may still be connected: stop portctl)."
        }
    }
    $published = @(Get-PublishedInf)
    if ($published.Count -eq 0) {
        Write-Host "No installed copy of $InfName found."
    }
    foreach ($oem in $published) {
        $code = Invoke-Native 'pnputil.exe' @('/delete-driver', $oem, '/uninstall', '/force')
        if ($code -ne 0 -and $code -ne 3010) {
            throw "pnputil /delete-driver $oem failed with exit code $code."
        }
        if ($code -eq 3010) { Write-Host 'A reboot completes the removal.' }
    }
    Write-Host "$ServiceName uninstalled."
    exit 0
}

$inf = Join-Path $PackageDir $InfName
foreach ($file in @($inf, (Join-Path $PackageDir 'portfilter.sys'), (Join-Path $PackageDir 'portfilter.cat'))) {
    if (-not (Test-Path $file)) {
        throw "Missing $file. Build the package with 'cargo make' (see docs/windows-install.md)."
    }
}

# '{current}' is quoted: unquoted, PowerShell would read {current} as a script block.
$bcd = Get-NativeOutput 'bcdedit.exe' @('/enum', '{current}')
if ($bcd -notmatch 'testsigning\s+Yes') {
    Write-Warning 'Test signing looks off: run "bcdedit /set testsigning on" and reboot, or the test-signed driver will not load.'
}

if ($TrustCertificate) {
    foreach ($store in @('Cert:\LocalMachine\Root', 'Cert:\LocalMachine\TrustedPublisher')) {
        Import-Certificate -FilePath $TrustCertificate -CertStoreLocation $store | Out-Null
        Write-Host "Trusted $TrustCertificate in $store"
    }
}

$code = Invoke-Native 'pnputil.exe' @('/add-driver', $inf, '/install')
if ($code -ne 0 -and $code -ne 3010 -and $code -ne 259) {
    throw "pnputil /add-driver failed with exit code $code (see docs/windows-install.md, Troubleshooting)."
}

if (Test-FilterLoaded) {
    Write-Host "$ServiceName is already loaded."
} elseif ((Invoke-Native 'fltmc.exe' @('load', $ServiceName)) -ne 0) {
    throw "fltmc load $ServiceName failed (see docs/windows-install.md, Troubleshooting)."
}

Invoke-Native 'fltmc.exe' @('filters') | Out-Null
Invoke-Native 'fltmc.exe' @('instances', '-f', $ServiceName) | Out-Null
Write-Host "$ServiceName installed and loaded."
exit 0
