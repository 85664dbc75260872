<#
.SYNOPSIS
    End-to-end smoke test of portfilter in a Windows test VM: install, load, talk to the
    driver with portctl, deny a create, watch creates, unload, uninstall.

.DESCRIPTION
    Run in an elevated PowerShell (5.1 or 7) on a test VM with test signing on. Prints
    PASS or FAIL per step. Steps that need an earlier one (for example portctl needs the
    driver loaded) are reported as SKIP when that one did not pass; unload and uninstall are
    always attempted. Exits 0 only when every step passed (with -SkipInstall: every step but
    install and uninstall, which are not run); a FAIL, a SKIP or a step that never ran makes
    it exit 1, so a run in which nothing was tested cannot look like a success.

    NOT run by the project's CI: there is no Windows there. Written to be read line by
    line before running it.

    Assumed portctl interface (crates/portctl, docs/portctl.md):
      portctl ping                         exit 0, prints "pong from ..."
      portctl stats --json                 one JSON object of counters on stdout, incl.
                                           "deciders" and "observers" (connections now;
                                           portctl's own control connection counts as
                                           neither)
      portctl config set observer-delivery=notify
      portctl guard --rules FILE --json --duration S
                                           one JSON line per create:
                                           {"type":"event","name":"\Device\...",...,
                                            "decision":{"verdict":"deny",...}}
      portctl watch --json --duration S    {"type":"event","name":...} per create
      portctl service install --name N --rules FILE --log-file LOG
                                           registers and starts the guard service;
      portctl service status --name N      "state:      running", "depends on: portfilter"
      portctl service uninstall --name N   stops and removes it
    Assumed rules-file syntax (TOML):
      default = "allow"
      [[rule]]
      action = "deny"
      path = 'C:\portfilter-smoke\denied*'   (DOS form: matched inside any volume)

.PARAMETER PackageDir
    The driver package (portfilter.inf, .sys, .cat), e.g. target\release\portfilter_package.

.PARAMETER Portctl
    portctl.exe; default: next to this script, else the one on PATH.

.PARAMETER WorkDir
    Scratch folder for the test files (created; removed at the end).

.PARAMETER TrustCertificate
    Optional test certificate (.cer) to trust before installing (see install.ps1).

.PARAMETER SkipInstall
    The driver is already installed: do not run pnputil /add-driver, and do not uninstall
    at the end (unload only).
#>
[CmdletBinding()]
param(
    [string] $PackageDir,
    [string] $Portctl,
    [string] $WorkDir = 'C:\portfilter-smoke',
    [string] $TrustCertificate,
    [switch] $SkipInstall
)

Set-StrictMode -Version 3
$ErrorActionPreference = 'Stop'

$ServiceName = 'portfilter'
$InfName = 'portfilter.inf'
$Altitude = '322999'
$script:Results = New-Object System.Collections.Generic.List[object]
$RunId = [guid]::NewGuid().ToString('N').Substring(0, 8)

# Every step that must pass for the run to succeed (-SkipInstall drops the first and the
# last). A step missing from the results at the end counts as a failure: a run cannot pass
# by not running its steps.
$MandatorySteps = @(
    'elevated shell',
    'test signing on',
    'portctl found',
    'install (pnputil /add-driver)',
    'load (fltmc load)',
    'fltmc filters lists portfilter at its altitude',
    'fltmc instances shows an instance on the system volume',
    'portctl ping',
    'portctl stats --json',
    'guard starts with a deny rule',
    'allowed create succeeds',
    'denied create fails with access denied',
    'guard reported both verdicts',
    'switch observers to notify delivery',
    'watch --json sees three creates',
    'service install (portctl service install)',
    'service runs and is the decider',
    'the service denies a create',
    'the service decides again after fltmc unload + fltmc load',
    'service uninstall (portctl service uninstall)',
    'unload (fltmc unload)',
    'uninstall (pnputil /delete-driver)'
)
if ($SkipInstall) {
    $MandatorySteps = @($MandatorySteps | Where-Object {
            $_ -ne 'install (pnputil /add-driver)' -and $_ -ne 'uninstall (pnputil /delete-driver)' })
}

# ---- helpers ---------------------------------------------------------------------------

# Runs one step: Step 'name' [-Needs @('earlier step', ...)] { body }.
# The body must output exactly one [bool]: $true is PASS; $false, a throw, or any other
# output (a stray value from a command inside the body) is FAIL. $Needs lists steps that
# must have passed (or, for install with -SkipInstall, been assumed); otherwise the step is
# SKIP. PositionalBinding off and explicit positions: the name and the script block are
# the only positional arguments, so a script block can never bind to $Needs.
function Step {
    [CmdletBinding(PositionalBinding = $false)]
    param(
        [Parameter(Mandatory = $true, Position = 0)] [string] $Name,
        [Parameter(Mandatory = $true, Position = 1)] [scriptblock] $Body,
        [string[]] $Needs = @()
    )
    foreach ($need in $Needs) {
        $prior = @($script:Results | Where-Object { $_.Name -eq $need })
        if ($prior.Count -eq 0 -or @('PASS', 'ASSUMED') -notcontains $prior[0].Result) {
            Write-Host ("SKIP  {0} (needs: {1})" -f $Name, $need) -ForegroundColor Yellow
            $script:Results.Add([pscustomobject]@{ Name = $Name; Result = 'SKIP' })
            return
        }
    }
    $result = 'FAIL'
    $detail = ''
    try {
        $out = @(& $Body)
        if ($out.Count -eq 1 -and $out[0] -is [bool]) {
            if ($out[0]) { $result = 'PASS' }
        } else {
            $detail = 'the step printed {0} value(s) instead of one [bool]: {1}' -f $out.Count, (($out | ForEach-Object { "$_" }) -join ', ')
        }
    } catch {
        $detail = $_.Exception.GetBaseException().Message
    }
    $color = if ($result -eq 'PASS') { 'Green' } else { 'Red' }
    Write-Host ("{0}  {1}{2}" -f $result, $Name, $(if ($detail) { " -- $detail" } else { '' })) -ForegroundColor $color
    $script:Results.Add([pscustomobject]@{ Name = $Name; Result = $result })
}

# Runs a native command; returns @{ Code; Output (one string) }.
function Run {
    param([string] $File, [string[]] $Arguments)
    $ErrorActionPreference = 'Continue'
    $output = & $File @Arguments 2>&1 | Out-String
    Write-Verbose ("> {0} {1}`n{2}" -f $File, ($Arguments -join ' '), $output)
    return @{ Code = $LASTEXITCODE; Output = $output }
}

# portctl stats --json, parsed. Only stdout is JSON: stderr (diagnostics) is kept apart, so
# a warning line cannot break the parse.
function Get-Stats {
    $ErrorActionPreference = 'Continue'
    $errFile = Join-Path $WorkDir 'stats.err.txt'
    $json = & $script:PortctlExe stats --json 2> $errFile | Out-String
    $code = $LASTEXITCODE
    if ($code -ne 0) {
        throw "portctl stats exited with ${code}: $json $(Get-Content -Raw -ErrorAction SilentlyContinue $errFile)"
    }
    return $json | ConvertFrom-Json
}

# Whether a parsed JSON object has a property (Set-StrictMode -Version 3 makes reading a
# missing property an error).
function Test-Property {
    param($Object, [string] $Name)
    return $null -ne $Object.PSObject.Properties[$Name]
}

# Polls portctl stats until $Condition (given the stats object) holds, or $Seconds pass.
function Wait-Stats {
    param([scriptblock] $Condition, [int] $Seconds = 20)
    $deadline = (Get-Date).AddSeconds($Seconds)
    while ((Get-Date) -lt $deadline) {
        $stats = Get-Stats
        if (& $Condition $stats) { return $true }
        Start-Sleep -Milliseconds 250
    }
    return $false
}

# Starts portctl in the background with stdout/stderr to files.
function Start-Portctl {
    param([string[]] $Arguments, [string] $Stem)
    $out = Join-Path $WorkDir "$Stem.out.jsonl"
    $err = Join-Path $WorkDir "$Stem.err.txt"
    return Start-Process -FilePath $script:PortctlExe -ArgumentList $Arguments `
        -RedirectStandardOutput $out -RedirectStandardError $err -NoNewWindow -PassThru
}

# The JSON event lines of a portctl output file.
function Read-Events {
    param([string] $Stem)
    $path = Join-Path $WorkDir "$Stem.out.jsonl"
    if (-not (Test-Path $path)) { return @() }
    Get-Content $path | Where-Object { $_ -like '{*' } | ForEach-Object { $_ | ConvertFrom-Json } |
        Where-Object { $_.type -eq 'event' }
}

function Test-FilterListed {
    $r = Run 'fltmc.exe' @('filters')
    return ($r.Output -split "`r?`n" | Where-Object { $_ -match "^\s*$ServiceName\s" })
}

# Creates (or tries to create) a file; returns $null on success, the exception otherwise.
# PowerShell wraps an exception thrown by a .NET method in a MethodInvocationException;
# GetBaseException() is the one the method threw (UnauthorizedAccessException for a create
# the driver denied).
function Try-Create {
    param([string] $Path)
    try {
        [System.IO.File]::WriteAllText($Path, "portfilter smoke test $RunId")
        return $null
    } catch {
        return $_.Exception.GetBaseException()
    }
}

# ---- preconditions ---------------------------------------------------------------------

Step 'elevated shell' {
    $principal = New-Object Security.Principal.WindowsPrincipal(
        [Security.Principal.WindowsIdentity]::GetCurrent())
    $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)
}

Step 'test signing on' {
    $r = Run 'bcdedit.exe' @('/enum', '{current}')
    $r.Output -match 'testsigning\s+Yes'
}

Step 'portctl found' {
    if ($Portctl) {
        $script:PortctlExe = (Resolve-Path $Portctl).Path
    } elseif (Test-Path (Join-Path $PSScriptRoot 'portctl.exe')) {
        $script:PortctlExe = Join-Path $PSScriptRoot 'portctl.exe'
    } else {
        $script:PortctlExe = (Get-Command portctl.exe -ErrorAction Stop).Source
    }
    Write-Host "      using $script:PortctlExe"
    $true
}

New-Item -ItemType Directory -Force -Path $WorkDir | Out-Null

# ---- install and load ------------------------------------------------------------------

if ($SkipInstall) {
    # Not run: later steps may rely on it, but it does not count as a pass.
    $script:Results.Add([pscustomobject]@{ Name = 'install (pnputil /add-driver)'; Result = 'ASSUMED' })
    Write-Host 'ASSUMED install (-SkipInstall: the driver is already installed)' -ForegroundColor Yellow
} else {
    Step 'install (pnputil /add-driver)' -Needs @('elevated shell') {
        if (-not $PackageDir) { throw '-PackageDir is required unless -SkipInstall' }
        $inf = Join-Path $PackageDir $InfName
        if (-not (Test-Path (Join-Path $PackageDir 'portfilter.cat'))) {
            throw "no portfilter.cat in ${PackageDir}: build the package with cargo make"
        }
        if ($TrustCertificate) {
            foreach ($store in @('Cert:\LocalMachine\Root', 'Cert:\LocalMachine\TrustedPublisher')) {
                Import-Certificate -FilePath $TrustCertificate -CertStoreLocation $store | Out-Null
            }
        }
        $r = Run 'pnputil.exe' @('/add-driver', $inf, '/install')
        if (@(0, 259, 3010) -notcontains $r.Code) { throw "pnputil exit code $($r.Code): $($r.Output)" }
        $true
    }
}

Step 'load (fltmc load)' -Needs @('install (pnputil /add-driver)') {
    if (Test-FilterListed) { Write-Host '      already loaded'; return $true }
    $r = Run 'fltmc.exe' @('load', $ServiceName)
    if ($r.Code -ne 0) { throw "fltmc load exit code $($r.Code): $($r.Output)" }
    $true
}

Step 'fltmc filters lists portfilter at its altitude' -Needs @('load (fltmc load)') {
    $line = Test-FilterListed
    Write-Host "      $line"
    [bool]($line -and ($line -match "\s$Altitude(\s|$)"))
}

Step 'fltmc instances shows an instance on the system volume' -Needs @('load (fltmc load)') {
    $r = Run 'fltmc.exe' @('instances', '-f', $ServiceName)
    $drive = $env:SystemDrive
    [bool]($r.Output -split "`r?`n" | Where-Object { $_ -match [regex]::Escape($drive) })
}

# ---- portctl: ping, stats --------------------------------------------------------------

Step 'portctl ping' -Needs @('load (fltmc load)', 'portctl found') {
    $r = Run $script:PortctlExe @('ping')
    Write-Host "      $($r.Output.Trim())"
    ($r.Code -eq 0) -and ($r.Output -match 'pong')
}

Step 'portctl stats --json' -Needs @('portctl ping') {
    $stats = Get-Stats
    $null -ne $stats.PSObject.Properties['events_seen']
}

# ---- request-reply: guard denies one file, allows another ------------------------------

$allowed = Join-Path $WorkDir "allowed-$RunId.txt"
$denied = Join-Path $WorkDir "denied-$RunId.txt"

Step 'guard starts with a deny rule' -Needs @('portctl stats --json') {
    $rules = Join-Path $WorkDir 'rules.toml'
    @(
        '# portfilter smoke test: deny creates of C:\portfilter-smoke\denied*',
        'default = "allow"',
        '',
        '[[rule]]',
        'name = "smoke deny"',
        'action = "deny"',
        ("path = '{0}'" -f (Join-Path $WorkDir 'denied*'))
    ) | Set-Content -Path $rules -Encoding ASCII
    $script:Guard = Start-Portctl @('guard', '--rules', "`"$rules`"", '--json', '--duration', '30') 'guard'
    Wait-Stats { param($s) (Test-Property $s 'deciders') -and $s.deciders -eq 1 }
}

Step 'allowed create succeeds' -Needs @('guard starts with a deny rule') {
    $e = Try-Create $allowed
    if ($e) { throw "create failed: $($e.Message)" }
    Test-Path $allowed
}

Step 'denied create fails with access denied' -Needs @('guard starts with a deny rule') {
    $e = Try-Create $denied
    if (-not $e) { throw 'the create succeeded' }
    Write-Host "      $($e.GetType().Name): $($e.Message)"
    ($e -is [System.UnauthorizedAccessException]) -and -not (Test-Path $denied)
}

Step 'guard reported both verdicts' -Needs @('guard starts with a deny rule') {
    if (-not $script:Guard.WaitForExit(45000)) { Stop-Process -Id $script:Guard.Id -Force }
    $events = @(Read-Events 'guard')
    # "decision" is left out of events that carry none (StrictMode: test before reading).
    $allowEvent = $events | Where-Object {
        $_.name -like "*\allowed-$RunId.txt" -and (Test-Property $_ 'decision') -and $_.decision.verdict -eq 'allow' }
    $denyEvent = $events | Where-Object {
        $_.name -like "*\denied-$RunId.txt" -and (Test-Property $_ 'decision') -and $_.decision.verdict -eq 'deny' }
    Write-Host "      $($events.Count) events; allow seen: $([bool]$allowEvent); deny seen: $([bool]$denyEvent)"
    [bool]$allowEvent -and [bool]$denyEvent
}

# ---- notify: watch sees the creates ----------------------------------------------------

Step 'switch observers to notify delivery' -Needs @('portctl stats --json') {
    $r = Run $script:PortctlExe @('config', 'set', 'observer-delivery=notify')
    if ($r.Code -ne 0) { throw "exit code $($r.Code): $($r.Output)" }
    $true
}

Step 'watch --json sees three creates' -Needs @('switch observers to notify delivery') {
    # portctl stats uses a control connection, which the driver counts as neither decider
    # nor observer: watch is there once the observer count has gone up by one.
    $before = (Get-Stats).observers
    $watch = Start-Portctl @('watch', '--json', '--duration', '15') 'watch'
    if (-not (Wait-Stats { param($s) $s.observers -ge $before + 1 })) { throw 'watch did not connect' }
    $names = 1..3 | ForEach-Object { Join-Path $WorkDir "watch-$RunId-$_.txt" }
    foreach ($name in $names) {
        $e = Try-Create $name
        if ($e) { throw "create of $name failed: $($e.Message)" }
    }
    if (-not $watch.WaitForExit(30000)) { Stop-Process -Id $watch.Id -Force }
    $events = @(Read-Events 'watch')
    $missing = $names | Where-Object {
        $leaf = Split-Path $_ -Leaf
        -not ($events | Where-Object { $_.name -like "*\$leaf" })
    }
    Write-Host "      $($events.Count) events; missing: $(@($missing).Count)"
    @($missing).Count -eq 0
}

# ---- Windows service: install -> the service denies a create -> uninstall ------------
# `portctl service install` registers `portctl guard` with a rules file as an automatic-start
# service that depends on the driver's service (docs/portctl.md, "Running guard as a
# Windows service"). These steps call Step with named parameters only.

$GuardServiceName = "portfilter-smoke-$RunId"
$GuardServiceRules = Join-Path $WorkDir 'service-rules.toml'
$GuardServiceLog = Join-Path $WorkDir 'service.log'
$GuardServiceInstall = 'service install (portctl service install)'

Step -Name $GuardServiceInstall -Needs @('portctl stats --json') -Body {
    @(
        '# portfilter smoke test, service: deny creates of C:\portfilter-smoke\denied-service*',
        'default = "allow"',
        '',
        '[[rule]]',
        'name = "smoke service deny"',
        'action = "deny"',
        ("path = '{0}'" -f (Join-Path $WorkDir 'denied-service*'))
    ) | Set-Content -Path $GuardServiceRules -Encoding ASCII
    $r = Run $script:PortctlExe @('service', 'install', '--name', $GuardServiceName,
        '--rules', $GuardServiceRules, '--log-file', $GuardServiceLog)
    Write-Host ($r.Output.Trim() -replace "`r?`n", "`n      ")
    if ($r.Code -ne 0) { throw "portctl service install exit code $($r.Code)" }
    $true
}

Step -Name 'service runs and is the decider' -Needs @($GuardServiceInstall) -Body {
    $r = Run $script:PortctlExe @('service', 'status', '--name', $GuardServiceName)
    Write-Host ($r.Output.Trim() -replace "`r?`n", "`n      ")
    if ($r.Code -ne 0) { throw "portctl service status exit code $($r.Code)" }
    if ($r.Output -notmatch 'state:\s+running') { throw 'the service is not running' }
    if ($r.Output -notmatch "depends on:\s+$ServiceName") { throw "no dependency on $ServiceName" }
    Wait-Stats -Condition { param($s) $s.deciders -eq 1 }
}

Step -Name 'the service denies a create' -Needs @('service runs and is the decider') -Body {
    $path = Join-Path $WorkDir "denied-service-$RunId.txt"
    $e = Try-Create $path
    if (-not $e) { throw 'the create succeeded' }
    Write-Host "      $($e.GetType().Name): $($e.Message)"
    ($e -is [System.UnauthorizedAccessException]) -and -not (Test-Path $path)
}

Step -Name 'the service decides again after fltmc unload + fltmc load' -Needs @('the service denies a create') -Body {
    $r = Run 'fltmc.exe' @('unload', $ServiceName)
    if ($r.Code -ne 0) { throw "fltmc unload exit code $($r.Code): $($r.Output)" }
    $r = Run 'fltmc.exe' @('load', $ServiceName)
    if ($r.Code -ne 0) { throw "fltmc load exit code $($r.Code): $($r.Output)" }
    if (-not (Wait-Stats -Condition { param($s) $s.deciders -eq 1 })) {
        throw 'the service did not reconnect to the reloaded driver'
    }
    $path = Join-Path $WorkDir "denied-service-reload-$RunId.txt"
    $e = Try-Create $path
    if (-not $e) { throw 'the create after the reload succeeded' }
    $e -is [System.UnauthorizedAccessException]
}

Step -Name 'service uninstall (portctl service uninstall)' -Needs @($GuardServiceInstall) -Body {
    $r = Run $script:PortctlExe @('service', 'uninstall', '--name', $GuardServiceName)
    Write-Host ($r.Output.Trim() -replace "`r?`n", "`n      ")
    if ($r.Code -ne 0) { throw "portctl service uninstall exit code $($r.Code)" }
    # The service control manager forgets a deleted service once no handle is open.
    $deadline = (Get-Date).AddSeconds(20)
    while ((Get-Service -Name $GuardServiceName -ErrorAction SilentlyContinue) -and
        ((Get-Date) -lt $deadline)) {
        Start-Sleep -Milliseconds 250
    }
    $gone = -not (Get-Service -Name $GuardServiceName -ErrorAction SilentlyContinue)
    $logged = ((Test-Path $GuardServiceLog) -and
        ((Get-Content -Path $GuardServiceLog -Raw) -match 'state=stopped'))
    Write-Host "      service removed: $gone; log file records the stop: $logged"
    $gone -and $logged
}

# ---- unload and uninstall (always attempted) -------------------------------------------

Step 'unload (fltmc unload)' -Needs @('elevated shell') {
    if (-not (Test-FilterListed)) { throw 'portfilter is not loaded' }
    $r = Run 'fltmc.exe' @('unload', $ServiceName)
    if ($r.Code -ne 0) { throw "fltmc unload exit code $($r.Code): $($r.Output)" }
    -not (Test-FilterListed)
}

if (-not $SkipInstall) {
    Step 'uninstall (pnputil /delete-driver)' -Needs @('elevated shell') {
        $published = @(Get-WindowsDriver -Online -All |
                Where-Object { $_.OriginalFileName -like "*\$InfName" } |
                ForEach-Object { $_.Driver })
        if ($published.Count -eq 0) { throw "no installed copy of $InfName" }
        foreach ($oem in $published) {
            $r = Run 'pnputil.exe' @('/delete-driver', $oem, '/uninstall', '/force')
            if (@(0, 3010) -notcontains $r.Code) { throw "pnputil exit code $($r.Code): $($r.Output)" }
        }
        $true
    }
}

Remove-Item -Recurse -Force -Path $WorkDir -ErrorAction SilentlyContinue

# ---- summary ---------------------------------------------------------------------------

$failed = @($script:Results | Where-Object { $_.Result -eq 'FAIL' })
$passed = @($script:Results | Where-Object { $_.Result -eq 'PASS' })
$skipped = @($script:Results | Where-Object { $_.Result -eq 'SKIP' })
$notPassed = @($MandatorySteps | Where-Object {
        $name = $_
        -not ($script:Results | Where-Object { $_.Name -eq $name -and $_.Result -eq 'PASS' }) })
$notRun = @($MandatorySteps | Where-Object {
        $name = $_
        -not ($script:Results | Where-Object { $_.Name -eq $name }) })
Write-Host ''
foreach ($name in $notRun) {
    Write-Host "NOT RUN  $name" -ForegroundColor Red
}
Write-Host ("{0} passed, {1} failed, {2} skipped, {3} not run" -f $passed.Count, $failed.Count, $skipped.Count, $notRun.Count)
if ($passed.Count -eq 0 -or $failed.Count -gt 0 -or $notPassed.Count -gt 0) {
    Write-Host ("SMOKE TEST FAILED: {0} of {1} mandatory steps did not pass" -f $notPassed.Count, $MandatorySteps.Count) -ForegroundColor Red
    exit 1
}
Write-Host 'SMOKE TEST PASSED' -ForegroundColor Green
exit 0
